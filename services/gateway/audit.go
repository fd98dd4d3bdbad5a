package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
)

// auditRoute is the route of the services' audit logs:
// GET /v1/audit/{service}?page_size=&page_token=.
const auditRoute = "/v1/audit/{service}"

// auditLog serves one service's audit log (rapport.audit.v1.AuditService,
// which every service serves on its own bbolt file).
func (g *Gateway) auditLog(w http.ResponseWriter, r *http.Request, params map[string]string) {
	name := params["service"]
	cc := g.clients[name]
	if cc == nil {
		names := make([]string, len(g.backends))
		for i, c := range g.backends {
			names[i] = c.name
		}
		writeError(w, http.StatusNotFound, status.Newf(codes.NotFound, "no service %q here (%s)", name, strings.Join(names, ", ")))
		return
	}
	req := &auditv1.ListAuditEventsRequest{PageToken: r.URL.Query().Get("page_token")}
	if v := r.URL.Query().Get("page_size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			writeError(w, http.StatusBadRequest, withFieldViolation(
				status.New(codes.InvalidArgument, "page_size is not a number"), "page_size", "is not a number"))
			return
		}
		req.PageSize = int32(n)
	}
	ctx, err := g.annotate(r.Context(), r, auditv1.AuditService_ListAuditEvents_FullMethodName, auditRoute)
	var resp *auditv1.ListAuditEventsResponse
	if err == nil {
		resp, err = auditv1.NewAuditServiceClient(cc).ListAuditEvents(ctx, req)
	}
	if err != nil {
		st := status.Convert(err)
		writeError(w, runtime.HTTPStatusFromCode(st.Code()), st)
		return
	}
	out, err := protojson.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, status.New(codes.Internal, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}
