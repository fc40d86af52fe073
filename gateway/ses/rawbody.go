package ses

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Streaming the raw message.
//
// The SDK serializes SendEmail into one JSON body in memory, the raw
// message base64-encoded inside it: a 40 MB message became a 54 MB body
// (plus the encoder's growing buffer and a base64 copy) on top of the
// message itself. The sink keeps the SDK (endpoint, SigV4, retries,
// errors) but hands it a placeholder of a few bytes as Content.Raw.Data;
// a Serialize-step middleware right after the SDK's serializer finds the
// placeholder's base64 in the serialized body, once, and replaces the
// body with a seekable one made on the fly: the JSON before it, the
// message in standard base64, the JSON after it. The bytes on the wire
// are those the SDK would have written for the real message; no base64
// copy of the message is ever held. The signer hashes the body by reading
// it and seeking back, each retry seeks back and reads it again.

// streamMinBytes is the smallest message streamed: below it the SDK's
// own base64 copy costs less than the placeholder, the body read and the
// per-call middleware (about a dozen allocations per message).
const streamMinBytes = 64 << 10

// placeholderLen is the placeholder's size: 24 bytes, 32 base64
// characters, drawn so that the characters are letters and digits only
// (nothing a JSON encoder could escape) and a collision with the rest of
// the body is out of reach.
const placeholderLen = 24

// newPlaceholder returns a placeholder and its base64 form.
func newPlaceholder() ([]byte, []byte) {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	enc := make([]byte, base64.StdEncoding.EncodedLen(placeholderLen))
	for i := range enc {
		enc[i] = alnum[rand.IntN(len(alnum))]
	}
	raw, err := base64.StdEncoding.DecodeString(string(enc))
	if err != nil || len(raw) != placeholderLen { // cannot happen: 32 chars, no padding
		panic("ses: placeholder does not decode")
	}
	return raw, enc
}

// streamRawID is the middleware's ID in the stack.
const streamRawID = "sesgate.StreamRawMessage"

// streamRaw is the Serialize middleware that swaps the placeholder for the
// message.
type streamRaw struct {
	marker []byte // the placeholder's base64
	data   []byte // the raw message
}

func (*streamRaw) ID() string { return streamRawID }

func (m *streamRaw) HandleSerialize(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (
	middleware.SerializeOutput, middleware.Metadata, error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("ses: unexpected transport type %T", in.Request)
	}
	s := req.GetStream()
	if s == nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, errors.New("ses: serialized SendEmail has no body")
	}
	body, err := io.ReadAll(io.LimitReader(s, maxEnvelopeJSON+1))
	if err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("ses: read serialized SendEmail: %w", err)
	}
	i := bytes.Index(body, m.marker)
	if len(body) > maxEnvelopeJSON || i < 0 || bytes.Count(body, m.marker) != 1 {
		// Never send the placeholder.
		return middleware.SerializeOutput{}, middleware.Metadata{}, errors.New("ses: raw message placeholder not found once in the serialized SendEmail")
	}
	rb := newRawBody(body[:i], m.data, body[i+len(m.marker):])
	if req, err = req.SetStream(rb); err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("ses: set SendEmail body: %w", err)
	}
	in.Request = req
	return next.HandleSerialize(ctx, in)
}

// maxEnvelopeJSON bounds the serialized SendEmail around the placeholder:
// 50 addresses, tags and names are far below it.
const maxEnvelopeJSON = 1 << 20

// withRawStream is the per-call option that installs streamRaw.
func withRawStream(marker, data []byte) func(*sesv2.Options) {
	return func(o *sesv2.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Serialize.Insert(&streamRaw{marker: marker, data: data}, "OperationSerializer", middleware.After)
		})
	}
}

// rawBody is prefix, base64(data), suffix, read and seeked without ever
// holding the encoded form: each Read encodes the groups of 3 bytes it
// covers. It is an io.ReadSeeker; it has no Len method, on purpose (the
// SDK would take Len as the whole length, not what is left).
type rawBody struct {
	prefix, data, suffix []byte
	encEnd               int64 // offset where the suffix starts
	size                 int64
	off                  int64
}

func newRawBody(prefix, data, suffix []byte) *rawBody {
	encEnd := int64(len(prefix)) + int64(base64.StdEncoding.EncodedLen(len(data)))
	return &rawBody{prefix: prefix, data: data, suffix: suffix, encEnd: encEnd, size: encEnd + int64(len(suffix))}
}

func (b *rawBody) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && b.off < b.size {
		var k int
		switch pre := int64(len(b.prefix)); {
		case b.off < pre:
			k = copy(p[n:], b.prefix[b.off:])
		case b.off < b.encEnd:
			o := b.off - pre
			g, within := o/4, int(o%4) // group of 4 characters (3 bytes)
			if within != 0 || len(p)-n < 4 {
				var s [4]byte
				base64.StdEncoding.Encode(s[:], b.data[3*g:min(3*g+3, int64(len(b.data)))])
				k = copy(p[n:], s[within:])
				break
			}
			groups := min(int64(len(p)-n)/4, (b.encEnd-b.off)/4)
			base64.StdEncoding.Encode(p[n:], b.data[3*g:min(3*(g+groups), int64(len(b.data)))])
			k = int(groups * 4)
		default:
			k = copy(p[n:], b.suffix[b.off-b.encEnd:])
		}
		n += k
		b.off += int64(k)
	}
	return n, nil
}

func (b *rawBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, errors.New("ses: raw body: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("ses: raw body: negative position")
	}
	b.off = offset
	return offset, nil
}
