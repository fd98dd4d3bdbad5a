package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
	"rapport.dev/platform/tenancy"
)

// auditPrefix is the route of the services' audit logs:
// GET /v1/audit/{service}?page_size=&page_token=.
const auditPrefix = "/v1/audit/"

// auditLog serves one service's audit log (rapport.audit.v1.AuditService,
// which every service serves on its own bbolt file).
func (g *Gateway) auditLog(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, auditPrefix)
	var b *backend
	for _, c := range g.backends {
		if c.name == name {
			b = c
		}
	}
	if b == nil {
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
	resp, err := auditv1.NewAuditServiceClient(b.client()).ListAuditEvents(forward(r), req)
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

// forward is the context of a backend call made for r by the gateway's own
// handlers: the caller's credential and tenant header as metadata, as
// grpc-gateway passes them on its routes.
func forward(r *http.Request) context.Context {
	md := metadata.MD{}
	if v := r.Header.Get("Authorization"); v != "" {
		md.Set("authorization", v)
	}
	if v := r.Header.Get(tenancy.HeaderName); v != "" {
		md.Set(tenancy.MetadataKey, v)
	}
	return metadata.NewOutgoingContext(r.Context(), md)
}
