package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/config"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/access"
)

const keysUsage = `usage: rapport keys create --tenant T --scopes S[,S...] [flags]
       rapport keys revoke [flags] KEY_ID
       rapport keys bootstrap --data-dir DIR

create and revoke talk to the running access service with the operator key
(read from <data-dir>/operator.key, or --operator-key / RAPPORT_OPERATOR_KEY).
create prints the new key: send it as "Authorization: Bearer <key>".
Scopes: ` + "customers:read customers:write segments:read segments:write loyalty:read loyalty:write care:read care:write admin" + `

bootstrap, with the access service stopped, creates a new operator key in
<data-dir>/access.db and writes it to <data-dir>/operator.key (the first
start of the access service does this by itself).
`

func keysCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, keysUsage)
		if len(args) == 0 {
			return errors.New("keys: a subcommand is required")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, keysUsage); fs.PrintDefaults() }
	b := config.New(fs, "RAPPORT_")
	var dataDir, addr, operator, tenant, scopes, name, keyID string
	var rate float64
	b.String(&dataDir, "data-dir", "./data", "data folder of the access service (operator.key)")
	b.String(&addr, "access-addr", "127.0.0.1:7105", "gRPC address of the access service")
	b.String(&operator, "operator-key", "", "operator key (default: read from <data-dir>/operator.key)")
	fs.StringVar(&tenant, "tenant", "", "tenant of the new key")
	fs.StringVar(&scopes, "scopes", "", "comma list of scopes")
	fs.StringVar(&name, "name", "", "label of the key")
	fs.StringVar(&keyID, "key-id", "", "id of the new key (default: generated)")
	fs.Float64Var(&rate, "rate-limit", 0, "requests per second (default 200)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := b.Err(); err != nil {
		return err
	}
	if sub == "bootstrap" {
		return bootstrapKey(ctx, dataDir)
	}
	if operator == "" {
		var err error
		if operator, err = operatorKey(dataDir); err != nil {
			return fmt.Errorf("keys: no --operator-key and %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch sub {
	case "create":
		key, err := createKey(ctx, addr, operator, &accessv1.CreateApiKeyRequest{KeyId: keyID, Tenant: tenant, Name: name,
			Scopes: splitList(scopes), RateLimit: rate})
		if err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		fmt.Println(key)
		return nil
	case "revoke":
		cc, err := grpcclient.Dial(addr, grpcclient.Options{Credentials: auth.KeyCredentials(operator)})
		if err != nil {
			return err
		}
		defer cc.Close()
		client := accessv1.NewAccessServiceClient(cc)
		if fs.NArg() != 1 {
			return errors.New("keys revoke: exactly one KEY_ID is required")
		}
		resp, err := client.RevokeApiKey(ctx, &accessv1.RevokeApiKeyRequest{KeyId: fs.Arg(0)})
		if err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Printf("revoked %s (tenant %s) at %s\n", resp.ApiKey.KeyId, resp.ApiKey.Tenant, resp.ApiKey.RevokeTime.AsTime().Format(time.RFC3339))
		return nil
	}
	return fmt.Errorf("keys: unknown subcommand %q", sub)
}

// bootstrapKey creates a new operator key offline. bbolt's file lock makes
// it fail cleanly while the access service runs.
func bootstrapKey(ctx context.Context, dataDir string) error {
	opts := access.Options()
	opts.LockTimeout = time.Second
	db, err := boltdb.Open(filepath.Join(dataDir, access.Name+".db"), opts)
	if err != nil {
		return fmt.Errorf("keys bootstrap: %w (is the access service running? then create keys with `rapport keys create`)", err)
	}
	defer db.Close()
	keys, err := access.OpenKeys(db, clock.Real{})
	if err != nil {
		return err
	}
	key, err := access.CreateOperatorKey(ctx, keys, filepath.Join(dataDir, access.OperatorKeyFile))
	if err != nil {
		return err
	}
	fmt.Printf("operator key %s written to %s\n", key.KeyId, filepath.Join(dataDir, access.OperatorKeyFile))
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// keyCredentials are a command's credentials: its API key, if any.
func keyCredentials(key string) credentials.PerRPCCredentials {
	if key == "" {
		return nil
	}
	return auth.KeyCredentials(key)
}

// withTenant names the tenant of a command's calls; with an API key and no
// tenant the key's tenant applies.
func withTenant(ctx context.Context, tenant string) context.Context {
	if tenant == "" {
		return ctx
	}
	return tenancy.WithTenant(ctx, tenant)
}

// operatorKey reads the operator key the access service wrote in dataDir.
func operatorKey(dataDir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, access.OperatorKeyFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}

// createKey creates a key through the access service at addr with the
// operator key and returns its secret.
func createKey(ctx context.Context, addr, operator string, req *accessv1.CreateApiKeyRequest) (string, error) {
	cc, err := grpcclient.Dial(addr, grpcclient.Options{Credentials: auth.KeyCredentials(operator)})
	if err != nil {
		return "", err
	}
	defer cc.Close()
	resp, err := accessv1.NewAccessServiceClient(cc).CreateApiKey(ctx, req)
	if err != nil {
		return "", err
	}
	if resp.Key == "" {
		return "", fmt.Errorf("key %s already exists; its secret was shown when it was created", resp.ApiKey.KeyId)
	}
	return resp.Key, nil
}

// tenantAdminKey creates an admin key of tenant on the suite whose access
// service is at addr and keeps its data in dataDir.
func tenantAdminKey(ctx context.Context, addr, dataDir, tenant string, rate float64) (string, error) {
	operator, err := operatorKey(dataDir)
	if err != nil {
		return "", err
	}
	return createKey(ctx, addr, operator, &accessv1.CreateApiKeyRequest{Tenant: tenant, Name: tenant + " admin",
		Scopes: []string{auth.ScopeAdmin}, RateLimit: rate})
}
