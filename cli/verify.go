package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/checkpoint"
)

func newVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "verify FILE.upg",
		Short:   "Check every checksum of a .upg file and that every tensor decodes",
		Example: `  upg verify models/miniphi-29m.upg`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := modelPath(args[0])
			if err != nil {
				return err
			}
			args[0] = path
			ck, err := checkpoint.Open(path)
			if err != nil {
				return err
			}
			defer ck.Close()
			f := ck.Upgfile()
			if f == nil {
				return usagef("%s is not a .upg file", args[0])
			}
			if err := f.Verify(); err != nil {
				return err
			}
			for _, n := range ck.Tensors.Names() {
				if shape, _ := ck.Tensors.Shape(n); len(shape) == 2 {
					if _, err := ck.Tensors.Matrix(n); err != nil {
						return err
					}
				} else if _, err := ck.Tensors.Vector(n); err != nil {
					return err
				}
			}
			if _, err := ck.Tokenizer(); err != nil {
				return err
			}
			fmt.Printf("%s: OK (format %s, %d tensors, header and all tensor checksums verified)\n", args[0], f.Meta.Version, len(f.Tensors))
			return nil
		},
	}
}
