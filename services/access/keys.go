package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/tenancy"
)

// Keys are "rk_<key id>.<secret>": the id finds the record, the secret (32
// random bytes, base64url) proves possession. Only SHA-256 of the secret is
// stored. A fast hash is enough here, unlike for passwords: a 256-bit random
// secret cannot be guessed by brute force, whatever the hash costs.
const keyPrefix = "rk_"

// Defaults of a key's rate limit.
const (
	DefaultRateLimit = 200
	maxRateLimit     = 1_000_000
)

var (
	bucketKeys   = []byte("keys")   // key id → accessv1.ApiKey
	bucketHashes = []byte("hashes") // key id → SHA-256 of the secret
	keyIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
)

// SchemaVersion of access.db.
const SchemaVersion = 1

// Options are access.db's bbolt options.
func Options() boltdb.Options {
	return boltdb.Options{Schema: SchemaVersion, Buckets: [][]byte{bucketKeys, bucketHashes}}
}

// entry is a key in memory: the service owns access.db, so the map is
// loaded once and changed only after a commit that changed the file.
type entry struct {
	key  *accessv1.ApiKey
	hash []byte

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Keys is the key store: access.db and its in-memory index. It
// authenticates keys in-process (auth.KeyAuthenticator).
type Keys struct {
	db    *boltdb.DB
	clock clock.Clock

	mu   sync.RWMutex
	keys map[string]*entry
}

// OpenKeys loads the keys of db.
func OpenKeys(db *boltdb.DB, clk clock.Clock) (*Keys, error) {
	k := &Keys{db: db, clock: clk, keys: map[string]*entry{}}
	err := db.View(func(tx *bolt.Tx) error {
		hashes := tx.Bucket(bucketHashes)
		return tx.Bucket(bucketKeys).ForEach(func(id, raw []byte) error {
			key := &accessv1.ApiKey{}
			if err := proto.Unmarshal(raw, key); err != nil {
				return fmt.Errorf("access: key %s: %w", id, err)
			}
			k.keys[string(id)] = k.newEntry(key, slices.Clone(hashes.Get(id)))
			return nil
		})
	})
	return k, err
}

func (k *Keys) newEntry(key *accessv1.ApiKey, hash []byte) *entry {
	return &entry{key: key, hash: hash, tokens: float64(key.Burst), last: k.clock.Now()}
}

// Empty reports whether no key exists yet.
func (k *Keys) Empty() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys) == 0
}

// Create stores a new key and returns it with its secret. A key with the
// same id and the same content is returned without a secret (a retry); with
// other content the call fails with ALREADY_EXISTS.
func (k *Keys) Create(ctx context.Context, key *accessv1.ApiKey) (*accessv1.ApiKey, string, error) {
	if key.KeyId == "" {
		key.KeyId = newID()
	}
	secret, err := newSecret()
	if err != nil {
		return nil, "", err
	}
	return k.create(ctx, key, secret)
}

// newID is a generated key id: 16 hex digits.
func newID() string {
	id := make([]byte, 8)
	rand.Read(id) // never fails (crypto/rand)
	return hex.EncodeToString(id)
}

func newSecret() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func (k *Keys) create(ctx context.Context, key *accessv1.ApiKey, secret string) (*accessv1.ApiKey, string, error) {
	hash := sha256.Sum256([]byte(secret))
	key.CreateTime = timestamppb.New(k.clock.Now())
	var existing *accessv1.ApiKey
	err := k.db.Update(ctx, func(tx *bolt.Tx) error {
		existing = nil
		if raw := tx.Bucket(bucketKeys).Get([]byte(key.KeyId)); raw != nil {
			existing = &accessv1.ApiKey{}
			return proto.Unmarshal(raw, existing)
		}
		v, err := proto.Marshal(key)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketKeys).Put([]byte(key.KeyId), v); err != nil {
			return err
		}
		return tx.Bucket(bucketHashes).Put([]byte(key.KeyId), hash[:])
	})
	if err != nil {
		return nil, "", err
	}
	if existing != nil {
		if existing.Tenant != key.Tenant || existing.Name != key.Name || !slices.Equal(existing.Scopes, key.Scopes) ||
			existing.RateLimit != key.RateLimit || existing.Burst != key.Burst {
			return nil, "", status.Errorf(codes.AlreadyExists, "key %q exists with other content", key.KeyId)
		}
		return existing, "", nil
	}
	k.mu.Lock()
	k.keys[key.KeyId] = k.newEntry(key, hash[:])
	k.mu.Unlock()
	return key, keyPrefix + key.KeyId + "." + secret, nil
}

// Revoke revokes a key. When it returns, no call with the key is accepted.
func (k *Keys) Revoke(ctx context.Context, id, actor string) (*accessv1.ApiKey, error) {
	var out *accessv1.ApiKey
	err := k.db.Update(ctx, func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketKeys).Get([]byte(id))
		if raw == nil {
			return status.Errorf(codes.NotFound, "key %q not found", id)
		}
		out = &accessv1.ApiKey{}
		if err := proto.Unmarshal(raw, out); err != nil {
			return err
		}
		if out.RevokeTime != nil {
			return nil
		}
		out.RevokeTime, out.RevokedBy = timestamppb.New(k.clock.Now()), actor
		v, err := proto.Marshal(out)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketKeys).Put([]byte(id), v)
	})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if e := k.keys[id]; e != nil {
		e.mu.Lock()
		e.key = out
		e.mu.Unlock()
	}
	k.mu.Unlock()
	return out, nil
}

// Get returns a key's description.
func (k *Keys) Get(id string) (*accessv1.ApiKey, bool) {
	k.mu.RLock()
	e := k.keys[id]
	k.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.key, true
}

// List returns a tenant's keys, newest first.
func (k *Keys) List(tenant string, revoked bool) []*accessv1.ApiKey {
	k.mu.RLock()
	var out []*accessv1.ApiKey
	for _, e := range k.keys {
		e.mu.Lock()
		if e.key.Tenant == tenant && (revoked || e.key.RevokeTime == nil) {
			out = append(out, e.key)
		}
		e.mu.Unlock()
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b *accessv1.ApiKey) int {
		if c := b.CreateTime.AsTime().Compare(a.CreateTime.AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.KeyId, b.KeyId)
	})
	return out
}

// Authenticate checks a key and charges one request to its rate limit.
func (k *Keys) Authenticate(key string) (*accessv1.ApiKey, error) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	id, secret, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return nil, status.Error(codes.Unauthenticated, "not a Rapport API key (rk_<id>.<secret>)")
	}
	k.mu.RLock()
	e := k.keys[id]
	k.mu.RUnlock()
	if e == nil {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	hash := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(hash[:], e.hash) != 1 {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	now := k.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.key.RevokeTime != nil {
		return nil, status.Errorf(codes.Unauthenticated, "API key %s was revoked", id)
	}
	// A token bucket: burst tokens, refilled at rate per second.
	if dt := now.Sub(e.last).Seconds(); dt > 0 {
		e.tokens = math.Min(float64(e.key.Burst), e.tokens+dt*e.key.RateLimit)
	}
	e.last = now
	if e.tokens < 1 {
		return nil, status.Errorf(codes.ResourceExhausted, "API key %s is over its rate limit of %g requests per second", id, e.key.RateLimit)
	}
	e.tokens--
	return e.key, nil
}

// AuthenticateKey implements auth.KeyAuthenticator in-process.
func (k *Keys) AuthenticateKey(_ context.Context, key string) (auth.Principal, error) {
	ak, err := k.Authenticate(key)
	if err != nil {
		return auth.Principal{}, err
	}
	return Principal(ak), nil
}

// Principal is the principal of an authenticated key.
func Principal(k *accessv1.ApiKey) auth.Principal {
	return auth.Principal{Tenant: k.Tenant, KeyID: k.KeyId, Scopes: k.Scopes}
}

// Remote authenticates keys through the access service over gRPC.
type Remote struct {
	Client accessv1.AccessServiceClient
}

// AuthenticateKey implements auth.KeyAuthenticator. A failure to reach the
// access service is UNAVAILABLE: the call is refused, never let through.
func (r Remote) AuthenticateKey(ctx context.Context, key string) (auth.Principal, error) {
	// The check is the suite's, not a tenant's: it names every tenant.
	resp, err := r.Client.Authenticate(tenancy.WithTenant(ctx, tenancy.All), &accessv1.AuthenticateRequest{Key: key})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.Unauthenticated, codes.ResourceExhausted:
			return auth.Principal{}, st.Err()
		case codes.Canceled, codes.DeadlineExceeded:
			return auth.Principal{}, st.Err()
		}
		return auth.Principal{}, status.Errorf(codes.Unavailable, "the access service could not check the key: %v", st.Message())
	}
	return Principal(resp.ApiKey), nil
}
