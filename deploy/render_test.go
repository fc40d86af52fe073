// Package deploy tests the Helm chart (deploy/helm/sesgate), the alert rules
// and the Grafana dashboard (deploy/monitoring). It is a module of its own so
// that Helm, the Kubernetes API types and Prometheus stay out of the
// gateway's go.mod; it imports the gateway's own flag and policy parsers
// (through the replace in go.mod) to check what the chart renders.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir   = "helm/sesgate"
	fullValues = "helm/sesgate/ci/full-values.yaml"
	release    = "mail"
	namespace  = "sesgate"
)

// rendered holds every object of a release, each decoded strictly into its
// API type: an unknown or misspelt field fails the test.
type rendered struct {
	deployments     map[string]*appsv1.Deployment
	statefulSets    map[string]*appsv1.StatefulSet
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	accounts        map[string]*corev1.ServiceAccount
	pdbs            map[string]*policyv1.PodDisruptionBudget
	netpols         map[string]*networkingv1.NetworkPolicy
	serviceMonitors map[string]*monitoringv1.ServiceMonitor
	rules           map[string]*monitoringv1.PrometheusRule
	notes           string
}

// strictly decodes a YAML document into v, refusing unknown and duplicate
// fields (sigs.k8s.io/yaml goes through the JSON tags of the API types, as
// the API server does).
func strictly(doc string, v any) error {
	j, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// valuesOf reads a values file ("" : none).
func valuesOf(path string) (map[string]any, error) {
	if path == "" {
		return map[string]any{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ReadValues(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vals, nil
}

// readValues reads a values file ("" : none) or fails the test.
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	vals, err := valuesOf(path)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

// template renders the chart as `helm template` does (client only, no
// cluster: lookup finds nothing), with the values of the file and then the
// overrides (YAML).
func template(valuesFile string, overrides ...string) (string, string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", "", err
	}
	vals, err := valuesOf(valuesFile)
	if err != nil {
		return "", "", err
	}
	for _, o := range overrides {
		ov, err := chartutil.ReadValues([]byte(o))
		if err != nil {
			return "", "", err
		}
		vals = chartutil.CoalesceTables(ov, vals)
	}
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = release, namespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", "", err
	}
	return rel.Manifest, rel.Info.Notes, nil
}

func render(t *testing.T, valuesFile string, overrides ...string) *rendered {
	t.Helper()
	manifest, notes, err := template(valuesFile, overrides...)
	if err != nil {
		t.Fatalf("helm template (%s %v): %v", valuesFile, overrides, err)
	}
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, netpols: map[string]*networkingv1.NetworkPolicy{},
		serviceMonitors: map[string]*monitoringv1.ServiceMonitor{}, rules: map[string]*monitoringv1.PrometheusRule{},
		notes: notes,
	}
	docs := releaseutil.SplitManifests(manifest)
	if len(docs) == 0 {
		t.Fatal("the chart rendered nothing")
	}
	for _, key := range slices.Sorted(maps.Keys(docs)) {
		doc := docs[key]
		var head struct {
			APIVersion, Kind string
			Metadata         struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: %v\n%s", key, err, doc)
		}
		name := head.Metadata.Name
		var v any
		switch head.APIVersion + "/" + head.Kind {
		case "apps/v1/Deployment":
			v = into(r.deployments, name)
		case "apps/v1/StatefulSet":
			v = into(r.statefulSets, name)
		case "v1/Service":
			v = into(r.services, name)
		case "v1/ConfigMap":
			v = into(r.configMaps, name)
		case "v1/Secret":
			v = into(r.secrets, name)
		case "v1/ServiceAccount":
			v = into(r.accounts, name)
		case "policy/v1/PodDisruptionBudget":
			v = into(r.pdbs, name)
		case "networking.k8s.io/v1/NetworkPolicy":
			v = into(r.netpols, name)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			v = into(r.serviceMonitors, name)
		case "monitoring.coreos.com/v1/PrometheusRule":
			v = into(r.rules, name)
		default:
			t.Fatalf("%s: unexpected %s %s", key, head.APIVersion, head.Kind)
		}
		if err := strictly(doc, v); err != nil {
			t.Fatalf("%s (%s %s): %v\n%s", key, head.Kind, name, err, doc)
		}
		if name == "" {
			t.Errorf("%s: %s without a name", key, head.Kind)
		}
	}
	return r
}

// into puts a new T under name in m and returns it to be decoded into.
func into[T any](m map[string]*T, name string) any {
	o := new(T)
	m[name] = o
	return o
}

// count is the number of objects of each kind, for a compact assertion.
func (r *rendered) count() string {
	return fmt.Sprintf("Deployment=%d StatefulSet=%d Service=%d ConfigMap=%d Secret=%d ServiceAccount=%d PDB=%d NetworkPolicy=%d ServiceMonitor=%d PrometheusRule=%d",
		len(r.deployments), len(r.statefulSets), len(r.services), len(r.configMaps), len(r.secrets), len(r.accounts),
		len(r.pdbs), len(r.netpols), len(r.serviceMonitors), len(r.rules))
}

func one[T any](t *testing.T, m map[string]T, name string) T {
	t.Helper()
	v, ok := m[name]
	if !ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		t.Fatalf("no object %q (have %s)", name, strings.Join(keys, ", "))
	}
	return v
}
