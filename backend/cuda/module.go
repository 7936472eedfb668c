package cuda

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

// The kernels, built by scripts/build-cuda.sh from kernels/*.cu.
//
//go:embed kernels.fatbin
var fatbin []byte

//go:embed kernels.manifest.json
var manifestJSON []byte

// FatbinEnv names a file that replaces the embedded fatbin (kernel
// development on a GPU machine: build with scripts/build-cuda.sh /tmp/k
// and point this at /tmp/k/kernels.fatbin).
const FatbinEnv = "UPG_CUDA_FATBIN"

// Manifest is kernels.manifest.json.
type Manifest struct {
	NVCC         string            `json:"nvcc"`
	Flags        string            `json:"flags"`
	ScriptSHA256 string            `json:"script_sha256"`
	Sources      map[string]string `json:"sources"`
	Outputs      map[string]struct {
		SHA256 string `json:"sha256"`
		Bytes  int    `json:"bytes"`
	} `json:"outputs"`
	Kernels map[string]map[string]struct {
		Registers   int `json:"registers"`
		SpillStores int `json:"spill_stores"`
		SpillLoads  int `json:"spill_loads"`
		Stack       int `json:"stack"`
	} `json:"kernels"`
}

// LoadManifest parses the embedded manifest.
func LoadManifest() (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		return nil, fmt.Errorf("cuda: kernels.manifest.json: %v", err)
	}
	return &m, nil
}

// kernelImage returns the fatbin to load: the embedded one, or the file
// named by FatbinEnv.
func kernelImage() ([]byte, string, error) {
	if p := os.Getenv(FatbinEnv); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("cuda: %s: %v", FatbinEnv, err)
		}
		return b, p, nil
	}
	if len(fatbin) == 0 {
		return nil, "", fmt.Errorf("cuda: this build has no kernels (kernels.fatbin is empty); run scripts/build-cuda.sh")
	}
	return fatbin, "embedded", nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
