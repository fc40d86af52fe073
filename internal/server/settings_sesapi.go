package server

import (
	"flag"

	"github.com/sesgate/sesgate/internal/cli"
)

// SESAPISettings are the settings of the SES API drop-in (gateway/sesapi).
type SESAPISettings struct {
	// AWSKeySecretFile holds the server key that AWS keys' secrets are
	// derived from; empty: <data-dir>/aws-key-secret is created and used
	// without a policy file (the laptop), and AWS keys are off with one.
	AWSKeySecretFile string
	// SESAPIRegion is the region SigV4 requests must be scoped to; empty:
	// the gateway's SES region (us-east-1 with the outbox).
	SESAPIRegion string
}

// sesAPIFlags adds the SES API's flags.
func sesAPIFlags(fs *flag.FlagSet, s *Settings) {
	env := cli.Env
	fs.StringVar(&s.AWSKeySecretFile, "aws-key-secret-file", env("SESGATE_AWS_KEY_SECRET_FILE", ""),
		"file holding the server key (at least 32 bytes) that AWS keys' secrets are derived from, for the SES API; empty: <data-dir>/aws-key-secret without a policy file, AWS keys off with one (env SESGATE_AWS_KEY_SECRET_FILE)")
	fs.StringVar(&s.SESAPIRegion, "ses-api-region", env("SESGATE_SES_API_REGION", ""),
		"region the SES API's SigV4 requests must be scoped to; empty: the gateway's SES region, us-east-1 with the outbox (env SESGATE_SES_API_REGION)")
}
