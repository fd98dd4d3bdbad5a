// Package access is the access service: the suite's API keys (created,
// listed and revoked by admins, stored hashed in access.db), their
// authentication for every other service, and their rate limits. It owns
// access.db; the other services ask it, over gRPC, about every key they
// receive, so a revoked key stops working as soon as the revocation returns.
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/component"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
)

// Name is the component's name, used for its target and its bbolt file.
const Name = "access"

// OperatorKeyFile is where the first start writes the operator key, in the
// data folder.
const OperatorKeyFile = "operator.key"

// Config configures the access service.
type Config struct {
	// DataDir holds access.db (and operator.key after the first start).
	DataDir string
	// ShutdownGrace bounds the graceful stop of in-flight RPCs.
	ShutdownGrace time.Duration
}

// Deps are what the process hands every component.
type Deps = component.Deps

// Service is an access service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	db     *boltdb.DB
	keys   *Keys
	server *grpcserver.Server
}

// New opens access.db, creates the operator key on the first start, and
// builds the server. deps.Auth's key authenticator is this service's own
// key store: callers need not set it.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("access: data dir is required")
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	deps = deps.For(Name)
	opts := Options()
	db, err := deps.OpenDB(cfg.DataDir, opts)
	if err != nil {
		return nil, err
	}
	keys, err := OpenKeys(db, deps.Clock)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, log: deps.Logger, db: db, keys: keys}
	if keys.Empty() {
		if err := s.bootstrap(); err != nil {
			db.Close()
			return nil, err
		}
	}
	if deps.Auth != nil { // the keys it checks are its own
		v := *deps.Auth
		v.Keys = keys
		deps.Auth = &v
	}
	s.server = deps.NewServer(CrossTenantMethods, db)
	accessv1.RegisterAccessServiceServer(s.server, &API{Keys: keys})
	return s, nil
}

// bootstrap creates the operator key on the first start.
func (s *Service) bootstrap() error {
	path := filepath.Join(s.cfg.DataDir, OperatorKeyFile)
	if _, err := CreateOperatorKey(context.Background(), s.keys, path); err != nil {
		return err
	}
	s.log.Warn("created the operator key: it manages every tenant's API keys; keep it secret", "file", path)
	return nil
}

// CreateOperatorKey creates an operator key (tenant "*", scope admin: it
// manages every tenant's keys and reads no tenant's data) and writes it to
// path. The first is named "operator", later ones get a generated id. The
// file is written before the key is committed: a crash in between leaves a
// file naming no key, which the next start overwrites, never a key whose
// secret is lost.
func CreateOperatorKey(ctx context.Context, keys *Keys, path string) (*accessv1.ApiKey, error) {
	key := &accessv1.ApiKey{KeyId: "operator", Tenant: tenancy.All, Name: "operator", Scopes: []string{auth.ScopeAdmin},
		RateLimit: DefaultRateLimit, Burst: 2 * DefaultRateLimit, CreatedBy: "bootstrap"}
	if !keys.Empty() {
		key.KeyId = "operator-" + newID()
	}
	secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	if err := writeSecretFile(path, keyPrefix+key.KeyId+"."+secret); err != nil {
		return nil, fmt.Errorf("access: write the operator key: %w", err)
	}
	out, _, err := keys.create(ctx, key, secret)
	return out, err
}

// writeSecretFile writes a key to path (0600) and syncs it.
func writeSecretFile(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(key + "\n")
	return errors.Join(err, f.Sync(), f.Close())
}

// Keys is the service's key store, for in-process authentication.
func (s *Service) Keys() *Keys { return s.keys }

// Server exposes the gRPC server.
func (s *Service) Server() *grpcserver.Server { return s.server }

// Serve serves on lis until ctx ends, then stops: health NOT_SERVING, gRPC
// graceful stop, bbolt closed.
func (s *Service) Serve(ctx context.Context, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.server.Serve(lis) }()
	s.log.Info("serving", "grpc", lis.Addr().String(), "db", s.db.Path())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.server.StopTimeout(s.cfg.ShutdownGrace)
	return errors.Join(serveErr, s.Close())
}

// Close releases access.db.
func (s *Service) Close() error { return s.db.Close() }
