package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"rapport.dev/platform/clock"
)

// Service tokens are "v1.<service>.<expiry unix seconds>.<signature>", the
// signature being HMAC-SHA256 of everything before it under the suite's
// shared secret, base64url. They live a few minutes: a leaked token is
// worth little, and no revocation list is needed.
const (
	tokenVersion  = "v1"
	tokenLifetime = 5 * time.Minute
	// clockSkew is how far the clocks of two machines may disagree.
	clockSkew = time.Minute
)

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// SignToken returns a token for service, valid until exp.
func SignToken(secret []byte, service string, exp time.Time) string {
	body := fmt.Sprintf("%s.%s.%d", tokenVersion, service, exp.Unix())
	return body + "." + sign(secret, body)
}

func sign(secret []byte, body string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// VerifyToken checks a service token at now and returns the service it names.
func VerifyToken(secret []byte, token string, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("no service secret configured")
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return "", ErrMalformed
	}
	body, sig := token[:i], token[i+1:]
	if !hmac.Equal([]byte(sig), []byte(sign(secret, body))) {
		return "", errors.New("bad signature")
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 || parts[0] != tokenVersion || !serviceName.MatchString(parts[1]) {
		return "", ErrMalformed
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", ErrMalformed
	}
	if now.After(time.Unix(exp, 0).Add(clockSkew)) {
		return "", errors.New("expired")
	}
	if time.Unix(exp, 0).Sub(now) > tokenLifetime+clockSkew {
		return "", errors.New("lives too long")
	}
	return parts[1], nil
}

// ServiceCredentials is the gRPC per-call credential of a service calling
// another: a service token, renewed before it expires. A call that already
// carries a credential (the gateway forwarding a client's API key) keeps it.
type ServiceCredentials struct {
	Secret  []byte
	Service string
	Clock   clock.Clock

	mu    sync.Mutex
	token string
	exp   time.Time
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *ServiceCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(MetadataKey)) > 0 {
		return nil, nil
	}
	return map[string]string{MetadataKey: service + c.Token()}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// suite's own network is plain gRPC (see deploy/README.md).
func (c *ServiceCredentials) RequireTransportSecurity() bool { return false }

// Token returns a valid token, minting a new one when the current one has
// less than half its life left.
func (c *ServiceCredentials) Token() string {
	now := c.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" || c.exp.Sub(now) < tokenLifetime/2 {
		c.exp = now.Add(tokenLifetime)
		c.token = SignToken(c.Secret, c.Service, c.exp)
	}
	return c.token
}

// LoadSecret reads the shared service secret from path. When create is set
// and the file does not exist, a random secret is written there first (0600),
// atomically: processes of one suite starting together agree on one secret.
func LoadSecret(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		if err := createSecret(path); err != nil {
			return nil, fmt.Errorf("service secret: %w", err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("service secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 32 {
		return nil, fmt.Errorf("service secret %s: at least 32 characters are required", path)
	}
	return []byte(s), nil
}

// createSecret writes a random secret to a temporary file and links it into
// place, so a reader never sees a half-written secret; a secret another
// process linked first wins.
func createSecret(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".service-secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(hex.EncodeToString(raw) + "\n")
	if err := errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// KeyCredentials is the gRPC per-call credential of a client holding an API
// key (the rapport commands).
type KeyCredentials string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (k KeyCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{MetadataKey: bearer + string(k)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (KeyCredentials) RequireTransportSecurity() bool { return false }

// WithKey returns ctx whose outgoing calls carry key.
func WithKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, bearer+key)
}
