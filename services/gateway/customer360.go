package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
)

// DefaultCustomer360Timeout bounds the backend calls of one Customer 360
// view when Options leaves Customer360Timeout zero.
const DefaultCustomer360Timeout = 2 * time.Second

// customer360Route is the route of the Customer 360 view. It is served by
// the gateway itself, not generated from a proto: it calls four services.
const customer360Route = "/v1/customers/{customer_id}/360"

// customer360OpenTasks is the page of open care tasks the view asks for;
// the care part's nextPageToken continues it through GET /v1/care/tasks.
const customer360OpenTasks = 100

// The parts of a Customer 360 view, as named in Customer360.Missing.
const (
	PartProfile    = "profile"
	PartIndicators = "indicators"
	PartScores     = "scores"
	PartLoyalty    = "loyalty"
	PartCare       = "care"
)

// Customer360 is the JSON body of GET /v1/customers/{customer_id}/360: the
// customer as every service sees them, fetched in parallel under one
// deadline. Each part is the protobuf JSON of what its service answered,
// with the API's camelCase names, or null when it is missing.
type Customer360 struct {
	// CustomerID is the customer.
	CustomerID string `json:"customerId"`
	// Profile is the profile service's Customer (GetCustomer). It is never
	// missing: without it the request fails as GET /v1/customers/{id} does.
	Profile json.RawMessage `json:"profile"`
	// Indicators are the profile service's CustomerIndicators
	// (GetCustomerIndicators).
	Indicators json.RawMessage `json:"indicators"`
	// Scores is segmentation's GetCustomerScoresResponse: features, RFM
	// scores, tier, quadrant, segments and the value model's view.
	Scores json.RawMessage `json:"scores"`
	// Loyalty is a Loyalty360: the customer's membership of every
	// programme of the tenant.
	Loyalty json.RawMessage `json:"loyalty"`
	// Care is a Care360: the customer's open tasks.
	Care json.RawMessage `json:"care"`
	// Missing lists the parts that are null and why; empty when the view
	// is complete.
	Missing []MissingPart `json:"missing"`
	// AsOf is when the gateway started fetching the view (RFC 3339, UTC):
	// every part is as of then or later.
	AsOf string `json:"asOf"`
}

// MissingPart is a part of a Customer 360 view that could not be fetched.
type MissingPart struct {
	// Part is the part: indicators, scores, loyalty or care.
	Part string `json:"part"`
	// Code is the gRPC code's name, e.g. "UNAVAILABLE" (the service is
	// down), "DEADLINE_EXCEEDED" (it did not answer in time),
	// "PERMISSION_DENIED" (the caller may not read it) or "UNIMPLEMENTED"
	// (this gateway has no such backend).
	Code string `json:"code"`
	// Message is meant for the developer calling the API.
	Message string `json:"message"`
}

// Loyalty360 is the loyalty part of a Customer 360 view.
type Loyalty360 struct {
	// Programs are the tenant's programmes, each with the customer's
	// membership; empty when the tenant has none.
	Programs []ProgramMembership `json:"programs"`
}

// ProgramMembership is a customer's membership of one programme.
type ProgramMembership struct {
	// ProgramID is the programme.
	ProgramID string `json:"programId"`
	// DisplayName is the programme's name.
	DisplayName string `json:"displayName,omitempty"`
	// PointsName is the name of its points, e.g. "积分".
	PointsName string `json:"pointsName,omitempty"`
	// Enrolled tells whether the customer is a member; a customer who is
	// not is an answer, not an error.
	Enrolled bool `json:"enrolled"`
	// Member is loyalty's Member view (GetMember) of a member: balance,
	// pending and expiring points, tier and progress to the next, value at
	// stake. Absent when not enrolled.
	Member json.RawMessage `json:"member,omitempty"`
}

// Care360 is the care part of a Customer 360 view.
type Care360 struct {
	// OpenTasks are the customer's scheduled, due, overdue and escalated
	// tasks (care's Task), soonest due first.
	OpenTasks []json.RawMessage `json:"openTasks"`
	// NextPageToken, when set, continues the listing:
	// GET /v1/care/tasks?customerId=…&pageToken=….
	NextPageToken string `json:"nextPageToken,omitempty"`
}

// partResult is what fetching one part gave: its JSON or why not.
type partResult struct {
	part string
	json json.RawMessage
	err  error
}

// customer360 serves GET /v1/customers/{customer_id}/360. Every part is
// fetched at once, each call carrying the caller's metadata (tenant,
// authorization, trace context) as the generated routes forward it, under
// one deadline: Customer360Timeout, or the request's own if shorter (the
// Grpc-Timeout header). The view is written once every part has answered
// or the deadline has passed, whichever is first, even if a backend has
// not returned by then (an in-process call runs the backend's handler in
// its goroutine): what is late is missing with DEADLINE_EXCEEDED.
//
// The profile is essential: when GetCustomer fails the request fails with
// its error, as GET /v1/customers/{customer_id} does (404 for an unknown
// customer, 401/403 for a caller who may not read it, 503 when profile is
// down), without waiting for the other parts.
func (g *Gateway) customer360(w http.ResponseWriter, r *http.Request, params map[string]string) {
	id := params["customer_id"]
	ctx, cancel := context.WithTimeout(r.Context(), g.opts.Customer360Timeout)
	defer cancel()
	asOf := g.opts.Clock.Now().UTC()
	// Annotating checks the headers before anything is called (a malformed
	// Grpc-Timeout is a 400, as on the other routes) and gives ctx the
	// request's own deadline, so that the view is not kept waiting past it.
	ctx, err := g.annotate(ctx, r, profilev1.ProfileService_GetCustomer_FullMethodName, customer360Route)
	if err != nil {
		g.handleError(r.Context(), nil, nil, w, r, err)
		return
	}
	// The parts read the request's headers, some perhaps after the view is
	// written: they get a copy.
	req := r.Clone(ctx)

	parts := []struct {
		name  string
		fetch func(context.Context, *http.Request, string) (json.RawMessage, error)
	}{
		{PartProfile, g.profile360}, {PartIndicators, g.indicators360}, {PartScores, g.scores360},
		{PartLoyalty, g.loyalty360}, {PartCare, g.care360},
	}
	results := make(chan partResult, len(parts)) // buffered: a late part's goroutine never blocks
	for _, p := range parts {
		go func() {
			raw, err := p.fetch(ctx, req, id)
			results <- partResult{part: p.name, json: raw, err: err}
		}()
	}
	got, failed := gather(ctx, results, len(parts))
	for _, p := range parts {
		if _, ok := got[p.name]; !ok && failed[p.name] == nil {
			failed[p.name] = status.FromContextError(ctx.Err()).Err() // late
		}
	}
	if err := failed[PartProfile]; err != nil {
		g.handleError(ctx, nil, nil, w, r, err)
		return
	}

	view := Customer360{CustomerID: id, Missing: []MissingPart{}, AsOf: asOf.Format(time.RFC3339Nano)}
	slots := map[string]*json.RawMessage{PartProfile: &view.Profile, PartIndicators: &view.Indicators,
		PartScores: &view.Scores, PartLoyalty: &view.Loyalty, PartCare: &view.Care}
	for _, p := range parts {
		err := failed[p.name]
		if err == nil {
			*slots[p.name] = got[p.name]
			continue
		}
		st := status.Convert(err)
		if st.Code() != codes.Unimplemented {
			g.opts.Logger.WarnContext(ctx, "gateway: customer 360: part missing",
				"customer_id", id, "part", p.name, "code", st.Code().String(), "error", st.Message())
		}
		st = redact(st)
		view.Missing = append(view.Missing, MissingPart{Part: p.name, Code: code.Code(st.Code()).String(), Message: st.Message()})
	}
	writeJSON(w, http.StatusOK, view)
}

// gather receives n results until the deadline, or until the profile
// part fails: then the view fails and the rest need not be waited for.
func gather(ctx context.Context, results <-chan partResult, n int) (got map[string]json.RawMessage, failed map[string]error) {
	got, failed = map[string]json.RawMessage{}, map[string]error{}
	for range n {
		select {
		case res := <-results:
			if res.err == nil {
				got[res.part] = res.json
				continue
			}
			failed[res.part] = res.err
			if res.part == PartProfile {
				return got, failed
			}
		case <-ctx.Done():
			return got, failed
		}
	}
	return got, failed
}

// annotate returns ctx carrying the request's metadata as the generated
// routes forward it, for a call of method from the gateway's own route
// pattern: runtime.AnnotateContext with the gateway's header matcher and
// annotators (the tenant and Authorization headers, the Grpc-Timeout
// deadline).
func (g *Gateway) annotate(ctx context.Context, r *http.Request, method, pattern string) (context.Context, error) {
	return runtime.AnnotateContext(ctx, g.mux, r, method, runtime.WithHTTPPathPattern(pattern))
}

// outgoing returns what a call of method on the named backend needs: the
// annotated context and the backend's client connection. A backend this
// gateway does not have is Unimplemented.
func (g *Gateway) outgoing(ctx context.Context, r *http.Request, backend, method string) (context.Context, grpc.ClientConnInterface, error) {
	cc := g.clients[backend]
	if cc == nil {
		return nil, nil, status.Errorf(codes.Unimplemented, "this gateway has no %s backend", backend)
	}
	ctx, err := g.annotate(ctx, r, method, customer360Route)
	return ctx, cc, err
}

func (g *Gateway) profile360(ctx context.Context, r *http.Request, id string) (json.RawMessage, error) {
	ctx, cc, err := g.outgoing(ctx, r, "profile", profilev1.ProfileService_GetCustomer_FullMethodName)
	if err != nil {
		return nil, err
	}
	resp, err := profilev1.NewProfileServiceClient(cc).GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: id})
	if err != nil {
		return nil, err
	}
	return marshalPart(resp.GetCustomer())
}

func (g *Gateway) indicators360(ctx context.Context, r *http.Request, id string) (json.RawMessage, error) {
	ctx, cc, err := g.outgoing(ctx, r, "profile", profilev1.ProfileService_GetCustomerIndicators_FullMethodName)
	if err != nil {
		return nil, err
	}
	resp, err := profilev1.NewProfileServiceClient(cc).GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: id})
	if err != nil {
		return nil, err
	}
	return marshalPart(resp.GetIndicators())
}

func (g *Gateway) scores360(ctx context.Context, r *http.Request, id string) (json.RawMessage, error) {
	ctx, cc, err := g.outgoing(ctx, r, "segmentation", segmentationv1.SegmentationService_GetCustomerScores_FullMethodName)
	if err != nil {
		return nil, err
	}
	resp, err := segmentationv1.NewSegmentationServiceClient(cc).GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: id})
	if err != nil {
		return nil, err
	}
	return marshalPart(resp)
}

// loyalty360 lists the tenant's programmes and asks each, in parallel, for
// the customer's membership. NotFound from GetMember is "not enrolled";
// any other failure fails the part.
func (g *Gateway) loyalty360(ctx context.Context, r *http.Request, id string) (json.RawMessage, error) {
	lctx, cc, err := g.outgoing(ctx, r, "loyalty", loyaltyv1.LoyaltyService_ListPrograms_FullMethodName)
	if err != nil {
		return nil, err
	}
	client := loyaltyv1.NewLoyaltyServiceClient(cc)
	programs, err := client.ListPrograms(lctx, &loyaltyv1.ListProgramsRequest{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mctx, err := g.annotate(ctx, r, loyaltyv1.LoyaltyService_GetMember_FullMethodName, customer360Route)
	if err != nil {
		return nil, err
	}
	view := Loyalty360{Programs: make([]ProgramMembership, len(programs.GetPrograms()))}
	errs := make([]error, len(view.Programs))
	var wg sync.WaitGroup
	for i, p := range programs.GetPrograms() {
		view.Programs[i] = ProgramMembership{ProgramID: p.GetProgramId(), DisplayName: p.GetDisplayName(), PointsName: p.GetPointsName()}
		wg.Go(func() {
			resp, err := client.GetMember(mctx, &loyaltyv1.GetMemberRequest{ProgramId: p.GetProgramId(), CustomerId: id})
			switch {
			case status.Code(err) == codes.NotFound:
				return // not a member
			case err != nil:
				errs[i] = err
				cancel() // the part has failed: the other programmes need not answer
				return
			}
			view.Programs[i].Enrolled = true
			view.Programs[i].Member, errs[i] = marshalPart(resp.GetMember())
		})
	}
	wg.Wait()
	// The failure that failed the part, not the cancellations it caused.
	for _, err := range errs {
		if err != nil && status.Code(err) != codes.Canceled {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(view)
}

// care360 lists the first page of the customer's open tasks.
func (g *Gateway) care360(ctx context.Context, r *http.Request, id string) (json.RawMessage, error) {
	ctx, cc, err := g.outgoing(ctx, r, "care", carev1.CareService_ListTasks_FullMethodName)
	if err != nil {
		return nil, err
	}
	// No states: the default is the open ones (scheduled, due, overdue, escalated).
	resp, err := carev1.NewCareServiceClient(cc).ListTasks(ctx, &carev1.ListTasksRequest{CustomerId: id, PageSize: customer360OpenTasks})
	if err != nil {
		return nil, err
	}
	view := Care360{OpenTasks: make([]json.RawMessage, 0, len(resp.GetTasks())), NextPageToken: resp.GetNextPageToken()}
	for _, t := range resp.GetTasks() {
		raw, err := marshalPart(t)
		if err != nil {
			return nil, err
		}
		view.OpenTasks = append(view.OpenTasks, raw)
	}
	return json.Marshal(view)
}

// partJSON writes parts as the API writes responses: camelCase names, enums
// as strings, unset fields left out.
var partJSON = protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false}

func marshalPart(m proto.Message) (json.RawMessage, error) {
	b, err := partJSON.Marshal(m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode: %v", err)
	}
	return b, nil
}
