package config

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder fills a Policy from the YAML tree key by key, so that every
// problem knows its key path and position: a key the type does not have, a
// key set twice, a value of the wrong kind. A value that does not decode
// keeps its default, and the checks of validate that are about it are
// dropped (report, below): each bad value is reported once.
type decoder struct {
	pos     map[string]position // key path -> where its key (or list item) is
	failed  []string            // paths whose value did not decode
	probs   []problem
	budget  int                 // decode steps left: aliases must not expand the file without bound
	merging map[*yaml.Node]bool // mappings whose merge keys are being followed
}

type position struct{ line, col int }

// problem is one finding about the value at path. A zero at means the
// position of path; unset: path is not in the file (at is its parent's).
type problem struct {
	path  string
	msg   string
	at    position
	unset bool
}

func newDecoder(size int) *decoder {
	return &decoder{pos: map[string]position{}, budget: 2*size + 50_000, merging: map[*yaml.Node]bool{}}
}

// add records a problem found at node n.
func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	d.probs = append(d.probs, problem{path: path, msg: fmt.Sprintf(format, args...), at: position{n.Line, n.Column}})
}

// at records where path is written (the first place wins).
func (d *decoder) at(path string, n *yaml.Node) {
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = position{n.Line, n.Column}
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode sets v from n. Structs, pointers and lists are walked here;
// anything else is a leaf that yaml decodes (durations, numbers, text,
// ByteSize), into a fresh value so that a failure leaves v untouched.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	d.budget--
	if d.budget < 0 {
		return
	}
	if n.ShortTag() == "!!null" {
		return // yaml leaves the zero value
	}
	t := v.Type()
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		d.leaf(n, v, path)
	case t.Kind() == reflect.Pointer:
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.wrongKind(n, t, path)
			return
		}
		d.mapping(n, v, path, map[string]bool{})
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			d.wrongKind(n, t, path)
			return
		}
		d.stringMap(n, v, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.wrongKind(n, t, path)
			return
		}
		s := reflect.MakeSlice(t, 0, len(n.Content))
		for _, item := range n.Content {
			if resolve(item).ShortTag() == "!!null" {
				continue // as yaml, which leaves empty items out
			}
			p := fmt.Sprintf("%s[%d]", path, s.Len())
			d.at(p, item)
			s = reflect.Append(s, reflect.New(t.Elem()).Elem())
			d.decode(item, s.Index(s.Len()-1), p)
		}
		v.Set(s)
	default:
		d.leaf(n, v, path)
	}
}

// stringMap decodes a mapping with names chosen by the operator (plans)
// into the map v: each value strictly, a name set twice reported.
func (d *decoder) stringMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" || k.Value == "<<" {
			d.add(path, k, "want names as keys, got %s", describeNode(k))
			continue
		}
		p := joinKey(path, k.Value)
		if f, dup := first[k.Value]; dup {
			d.add(p, k, "set twice (first on line %d)", f.Line)
			continue
		}
		first[k.Value] = k
		d.at(p, k)
		e := reflect.New(t.Elem()).Elem()
		d.decode(val, e, p)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
	}
	v.Set(m)
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	nv := reflect.New(v.Type())
	if err := n.Decode(nv.Interface()); err != nil {
		d.wrongKind(n, v.Type(), path)
		return
	}
	v.Set(nv.Elem())
}

// mapping decodes the keys of n into the struct v, skipping the keys in
// done (set already: yaml's merge keys "<<" never override a key).
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, done map[string]bool) {
	d.budget--
	if d.budget < 0 {
		return
	}
	fields := yamlFields(v.Type())
	first := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			merges = append(merges, val)
			continue
		}
		if k.ShortTag() == "!!null" { // yaml itself would skip it
			d.add(path, k, "a key without a name")
			continue
		}
		p := joinKey(path, k.Value)
		if f, dup := first[k.Value]; dup {
			d.add(p, k, "set twice (first on line %d)", f.Line)
			continue
		}
		first[k.Value] = k
		if done[k.Value] {
			continue
		}
		d.at(p, k)
		idx, ok := fields[k.Value]
		if !ok {
			d.add(p, k, "unknown key (want one of: %s)", strings.Join(fieldNames(v.Type()), ", "))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), p)
	}
	for k := range first {
		done[k] = true
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	for _, m := range merges {
		m = resolve(m)
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, s := range sources {
			s = resolve(s)
			if s.Kind != yaml.MappingNode {
				d.add(joinKey(path, "<<"), s, "want a mapping to merge, got %s", describeNode(s))
				continue
			}
			if d.merging[s] {
				d.add(joinKey(path, "<<"), s, "merges a mapping into itself")
				continue
			}
			d.mapping(s, v, path, done)
		}
	}
}

func (d *decoder) wrongKind(n *yaml.Node, t reflect.Type, path string) {
	d.failed = append(d.failed, path)
	d.probs = append(d.probs, problem{path: path, msg: fmt.Sprintf("want %s, got %s", describeType(t), describeNode(n))})
}

// describeType says in an operator's words what a value of type t is.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration like 30s, 5m or 1h30m"
	case reflect.TypeFor[ByteSize]():
		return "a size like 10MB or 512KiB (or a number of bytes)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "text"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "key: value pairs"
	}
	return "another kind of value"
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "key: value pairs"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// yamlFields maps the yaml keys of struct type t to their field indexes,
// inline fields included.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case opts == "inline":
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
		case name == "":
			out[strings.ToLower(f.Name)] = []int{i}
		default:
			out[name] = []int{i}
		}
	}
	return out
}

// fieldNames lists the yaml keys of t in the order of its fields.
func fieldNames(t reflect.Type) []string {
	fields := yamlFields(t)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return slices.Compare(fields[a], fields[b]) })
	return names
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// report merges the decoding problems with the checks of validate, drops
// the checks about a value that did not decode (or about the section
// holding it) and all but the first check of each key, and sorts them by
// their place in the file. Each reads "key (line N): what is wrong"; a
// required key left out reads "key (line N, not set)", N its section's.
func (d *decoder) report(checks []problem) []string {
	probs := slices.Clone(d.probs)
	checked := map[string]bool{}
	for _, p := range d.probs {
		checked[p.path] = true
	}
	for _, c := range checks {
		if checked[c.path] || slices.ContainsFunc(d.failed, func(f string) bool { return related(c.path, f) }) {
			continue
		}
		checked[c.path] = true
		probs = append(probs, c)
	}
	for i := range probs {
		if probs[i].at.line == 0 {
			_, written := d.pos[probs[i].path]
			probs[i].at, probs[i].unset = d.position(probs[i].path), !written
		}
	}
	slices.SortStableFunc(probs, func(a, b problem) int {
		return cmp.Or(cmp.Compare(a.at.line, b.at.line), cmp.Compare(a.at.col, b.at.col))
	})
	out := make([]string, len(probs))
	for i, p := range probs {
		name := p.path
		if name == "" {
			name = "the policy"
		}
		where := fmt.Sprintf("line %d", p.at.line)
		if p.unset {
			where += ", not set"
		}
		out[i] = fmt.Sprintf("%s (%s): %s", name, where, p.msg)
	}
	return out
}

// related: one of the paths is the other or holds it.
func related(a, b string) bool {
	within := func(inner, outer string) bool {
		rest, ok := strings.CutPrefix(inner, outer)
		return ok && (rest == "" || outer == "" || rest[0] == '.' || rest[0] == '[')
	}
	return within(a, b) || within(b, a)
}

// position of path, or of its nearest written parent when the key is
// missing (a required key left out).
func (d *decoder) position(path string) position {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.pos[""]
		}
		path = path[:i]
	}
}
