package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo/crypto"
)

func keyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "key",
		Usage: "manage organisation and recovery keys",
		Subcommands: []*ucli.Command{{
			Name:  "init",
			Usage: "create an organisation secret and the admin recovery key pair (offline)",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "org-out", Required: true, Usage: "write the organisation key (secret + recovery public key) to `FILE`"},
				&ucli.StringFlag{Name: "recovery-out", Required: true, Usage: "write the recovery key, wrapped under the password, to `FILE`"},
			},
			Action: func(c *ucli.Context) error {
				e := newEnv(c)
				pw, err := e.newSecretPassword("password for the recovery key: ")
				if err != nil {
					return err
				}
				secret, err := crypto.NewRandomKey()
				if err != nil {
					return err
				}
				priv, pub, err := crypto.GenerateKeyPair()
				if err != nil {
					return err
				}
				orgData, err := crypto.EncodeOrgKey(crypto.OrgKey{Version: 1, Secret: secret, RecoveryPublic: pub})
				if err != nil {
					return err
				}
				recData, err := crypto.EncodeRecoveryKey(crypto.RecoveryKey{Version: 1, Private: priv}, pw, crypto.DefaultKDFParams)
				if err != nil {
					return err
				}
				if err := writeSecretFile(c.String("recovery-out"), recData); err != nil {
					return err
				}
				if err := writeSecretFile(c.String("org-out"), orgData); err != nil {
					return err
				}
				e.info("wrote the organisation key to %s (give it to your agents)\n"+
					"wrote the recovery key to %s: keep it offline; with its password it reads every host's backups",
					c.String("org-out"), c.String("recovery-out"))
				fmt.Fprintln(e.stdout, c.String("org-out"))
				return nil
			},
		}},
	}
}
