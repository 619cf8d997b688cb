// Command interop runs the interop plan (test/interop/plan.ts) with grpc-go and prints the
// report: one JSON document on stdout, messages as canonical proto JSON (protojson), errors as
// grpc-go's status package sees them.
//
// Usage: interop PLAN.json
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "microchat/interop/gen/buf/validate" // registers buf.validate.Violations for status details
	imv1 "microchat/interop/gen/im/v1"
)

type plan struct {
	Target        string            `json:"target"`
	Tokens        map[string]string `json:"tokens"`
	StepTimeoutMs int               `json:"stepTimeoutMs"`
	Steps         []step            `json:"steps"`
}

type step struct {
	Kind    string            `json:"kind"`
	Name    string            `json:"name"`
	Service string            `json:"service"`
	Method  string            `json:"method"`
	As      string            `json:"as"`
	Request json.RawMessage   `json:"request"`
	Raw     *string           `json:"raw"`
	Capture map[string]string `json:"capture"`
	Actions []action          `json:"actions"`
}

type action struct {
	Write       json.RawMessage `json:"write"`
	Unary       *step           `json:"unary"`
	AwaitPushes int             `json:"awaitPushes"`
	AwaitFrames int             `json:"awaitFrames"`
	Close       bool            `json:"close"`
	Cancel      bool            `json:"cancel"`
}

type reportedError struct {
	Code       int             `json:"code"`
	Message    string          `json:"message"`
	Status     json.RawMessage `json:"status"`
	DetailsBin *string         `json:"detailsBin"`
}

type stepReport struct {
	Name     string            `json:"name"`
	Ok       json.RawMessage   `json:"ok,omitempty"`
	Error    *reportedError    `json:"error,omitempty"`
	Frames   []json.RawMessage `json:"frames,omitempty"`
	End      *reportedError    `json:"end,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Trailers map[string]string `json:"trailers,omitempty"`
}

// rawCodec sends the plan's raw bytes as they are: a request no marshaler would produce.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	return proto.Unmarshal(data, v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

type runner struct {
	plan    plan
	conn    *grpc.ClientConn
	saved   map[string]string
	steps   []stepReport
	timeout time.Duration
}

func (r *runner) ctx(user string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	if user != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.plan.Tokens[user])
	}
	return ctx, cancel
}

func toJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func flat(md metadata.MD) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		if len(v) > 0 {
			if strings.HasSuffix(k, "-bin") {
				out[k] = base64.StdEncoding.EncodeToString([]byte(v[0]))
			} else {
				out[k] = v[0]
			}
		}
	}
	return out
}

func reported(err error, trailer metadata.MD) *reportedError {
	st := status.Convert(err)
	e := &reportedError{Code: int(st.Code()), Message: st.Message(), Status: json.RawMessage("null")}
	if st.Code() != 0 {
		e.Status = toJSON(st.Proto())
	}
	if v := trailer.Get("grpc-status-details-bin"); len(v) > 0 {
		s := base64.StdEncoding.EncodeToString([]byte(v[0]))
		e.DetailsBin = &s
	}
	return e
}

// methodTypes finds a method's request and response types in the generated descriptors.
func methodTypes(service, method string) (protoreflect.MessageType, protoreflect.MessageType) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		panic(err)
	}
	m := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	in, _ := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	out, _ := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
	return in, out
}

var placeholder = regexp.MustCompile(`\$\{(\w+)\}`)

func (r *runner) unary(s step) {
	in, out := methodTypes(s.Service, s.Method)
	ctx, cancel := r.ctx(s.As)
	defer cancel()
	var header, trailer metadata.MD
	opts := []grpc.CallOption{grpc.Header(&header), grpc.Trailer(&trailer)}
	res := out.New().Interface()
	path := "/" + s.Service + "/" + s.Method
	var err error
	if s.Raw != nil {
		raw, _ := base64.StdEncoding.DecodeString(*s.Raw)
		err = r.conn.Invoke(ctx, path, raw, res, append(opts, grpc.ForceCodec(rawCodec{}))...)
	} else {
		text := placeholder.ReplaceAllStringFunc(string(s.Request), func(m string) string { return r.saved[placeholder.FindStringSubmatch(m)[1]] })
		req := in.New().Interface()
		if len(strings.TrimSpace(text)) > 0 {
			if e := protojson.Unmarshal([]byte(text), req); e != nil {
				panic(fmt.Sprintf("%s: %v", s.Name, e))
			}
		}
		err = r.invoke(ctx, s, req, res, opts)
	}
	rep := stepReport{Name: s.Name, Headers: flat(header)}
	if err != nil {
		rep.Error = reported(err, trailer)
		rep.Trailers = flat(trailer)
	} else {
		rep.Ok = toJSON(res)
		for name, p := range s.Capture {
			var v any
			_ = json.Unmarshal(rep.Ok, &v)
			for _, k := range strings.Split(p, ".") {
				if m, ok := v.(map[string]any); ok {
					v = m[k]
				}
			}
			if str, ok := v.(string); ok {
				r.saved[name] = str
			}
		}
	}
	r.steps = append(r.steps, rep)
}

// invoke calls a unary method through the generated client.
func (r *runner) invoke(ctx context.Context, s step, req, res proto.Message, opts []grpc.CallOption) error {
	g := imv1.NewGatewayServiceClient(r.conn)
	c := imv1.NewConversationServiceClient(r.conn)
	var got proto.Message
	var err error
	switch s.Service + "/" + s.Method {
	case "im.v1.GatewayService/Send":
		got, err = g.Send(ctx, req.(*imv1.SendRequest), opts...)
	case "im.v1.GatewayService/Sync":
		got, err = g.Sync(ctx, req.(*imv1.SyncRequest), opts...)
	case "im.v1.GatewayService/FetchRange":
		got, err = g.FetchRange(ctx, req.(*imv1.FetchRangeRequest), opts...)
	case "im.v1.GatewayService/MarkRead":
		got, err = g.MarkRead(ctx, req.(*imv1.MarkReadRequest), opts...)
	case "im.v1.ConversationService/CreateGroup":
		got, err = c.CreateGroup(ctx, req.(*imv1.CreateGroupRequest), opts...)
	case "im.v1.ConversationService/AddMembers":
		got, err = c.AddMembers(ctx, req.(*imv1.AddMembersRequest), opts...)
	case "im.v1.ConversationService/RemoveMembers":
		got, err = c.RemoveMembers(ctx, req.(*imv1.RemoveMembersRequest), opts...)
	case "im.v1.ConversationService/ListMembers":
		got, err = c.ListMembers(ctx, req.(*imv1.ListMembersRequest), opts...)
	case "im.v1.ConversationService/ListConversations":
		got, err = c.ListConversations(ctx, req.(*imv1.ListConversationsRequest), opts...)
	default:
		panic("no method " + s.Service + "/" + s.Method)
	}
	if err == nil {
		proto.Merge(res, got)
	}
	return err
}

type frames struct {
	mu     sync.Mutex
	cond   *sync.Cond
	list   []json.RawMessage
	pushes int
	ids    map[string]bool
	ended  bool
}

func (r *runner) stream(s step) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.plan.Tokens[s.As])
	g := imv1.NewGatewayServiceClient(r.conn)
	f := &frames{ids: map[string]bool{}}
	f.cond = sync.NewCond(&f.mu)
	var recv func() (proto.Message, error)
	var send func(*imv1.ConnectRequest) error
	var closeSend func() error
	var header func() (metadata.MD, error)
	var trailer func() metadata.MD
	if s.Kind == "connect" {
		st, err := g.Connect(ctx)
		if err != nil {
			panic(err)
		}
		recv = func() (proto.Message, error) { return st.Recv() }
		send, closeSend, header, trailer = st.Send, st.CloseSend, st.Header, st.Trailer
	} else {
		st, err := g.Subscribe(ctx, &imv1.SubscribeRequest{})
		if err != nil {
			panic(err)
		}
		recv = func() (proto.Message, error) { return st.Recv() }
		header, trailer = st.Header, st.Trailer
	}
	var endErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := recv()
			f.mu.Lock()
			if err != nil {
				endErr = err
				f.ended = true
				f.cond.Broadcast()
				f.mu.Unlock()
				return
			}
			var probe struct {
				RequestID string `json:"requestId"`
			}
			j := toJSON(m)
			_ = json.Unmarshal(j, &probe)
			if probe.RequestID == "" {
				f.pushes++
			} else {
				f.ids[probe.RequestID] = true
			}
			f.list = append(f.list, j)
			f.cond.Broadcast()
			f.mu.Unlock()
		}
	}()
	waitUntil := func(what string, ok func() bool) {
		deadline := time.Now().Add(r.timeout)
		timer := time.AfterFunc(r.timeout, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
		defer timer.Stop()
		f.mu.Lock()
		defer f.mu.Unlock()
		for !ok() {
			if f.ended {
				panic(fmt.Sprintf("%s: the stream ended (%v) while waiting for %s", s.Name, endErr, what))
			}
			if time.Now().After(deadline) {
				panic(fmt.Sprintf("%s: no %s within %v", s.Name, what, r.timeout))
			}
			f.cond.Wait()
		}
	}
	for _, a := range s.Actions {
		switch {
		case a.Write != nil:
			req := &imv1.ConnectRequest{}
			if err := protojson.Unmarshal(a.Write, req); err != nil {
				panic(err)
			}
			id := fmt.Sprint(req.GetRequestId())
			if err := send(req); err != nil {
				panic(err)
			}
			waitUntil("answer to request "+id, func() bool { return f.ids[id] })
		case a.Unary != nil:
			r.unary(*a.Unary)
		case a.AwaitPushes > 0:
			waitUntil(fmt.Sprintf("%d pushes", a.AwaitPushes), func() bool { return f.pushes >= a.AwaitPushes })
		case a.AwaitFrames > 0:
			waitUntil(fmt.Sprintf("%d frames", a.AwaitFrames), func() bool { return len(f.list) >= a.AwaitFrames })
		case a.Close:
			if err := closeSend(); err != nil {
				panic(err)
			}
		case a.Cancel:
			cancel()
		}
	}
	select {
	case <-done:
	case <-time.After(r.timeout):
		panic(s.Name + ": did not end in time")
	}
	h, _ := header()
	end := &reportedError{Code: 0, Message: "", Status: json.RawMessage("null")}
	if endErr != nil && !errors.Is(endErr, io.EOF) {
		end = reported(endErr, trailer())
	}
	r.steps = append(r.steps, stepReport{Name: s.Name, Frames: f.list, End: end, Headers: flat(h)})
}

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(p.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	r := &runner{plan: p, conn: conn, saved: map[string]string{}, timeout: time.Duration(p.StepTimeoutMs) * time.Millisecond}
	for _, s := range p.Steps {
		if s.Kind == "unary" {
			r.unary(s)
		} else {
			r.stream(s)
		}
	}
	out, _ := json.Marshal(map[string]any{"stack": "grpc-go " + grpc.Version, "steps": r.steps})
	os.Stdout.Write(out)
}
