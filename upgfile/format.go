// Package upgfile reads and writes .upg files: one self-contained compressed
// model (architecture config, embedded tokenizer files, chat template,
// generation defaults, provenance, tensor directory and tensor data).
//
// # Container layout (format 1.0)
//
// All integers are little-endian. A = alignment from the preamble (the writer
// always uses 4096). CRC = CRC-32C (Castagnoli), as computed by
// hash/crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)).
//
//	offset          size  content
//	0               32    preamble
//	  0             4       magic "UPG\x00"
//	  4             2       format major version (1)
//	  6             2       format minor version (0)
//	  8             4       flags: incompatible binary features, none defined in 1.x (0)
//	  12            4       alignment A, a power of two in [64, 1<<20] (4096)
//	  16            12      reserved, zero
//	  28            4       CRC of preamble bytes [0, 28)
//	32              ...   tensor data: for each directory entry i in order,
//	                        zero padding up to off_i = alignUp(cursor, A), then
//	                        length_i data bytes; cursor starts at 32 and becomes
//	                        off_i + length_i
//	H = cursor      L     header: UTF-8 JSON object (metadata + tensor directory)
//	H+L             32    trailer
//	  0             8       header offset H
//	  8             8       header length L
//	  16            4       CRC of the header bytes
//	  20            4       reserved, zero
//	  24            4       CRC of trailer bytes [0, 24)
//	  28            4       magic "UPG\x00"
//	H+L+32                end of file (file size = H + L + 32 exactly)
//
// The layout is canonical: every tensor offset is determined by the previous
// entry, so the bytes of a file partition exactly into preamble, padding,
// tensor data, header and trailer. Each part is protected: the preamble and
// trailer by their own CRC (plus magic), the header by the trailer's header
// CRC, each tensor by the crc32c field of its directory entry, and padding by
// the rule that it is zero. Open checks the preamble, trailer and header
// (cheap); Verify additionally checks every tensor CRC and every padding byte,
// so any single corrupted byte anywhere in the file is detected by Open or
// Verify.
//
// The header JSON object has these keys (all optional; unknown keys are
// preserved in Metadata.Extra):
//
//	"architecture"   any JSON: model config
//	"tokenizer"      object: file name -> file contents, base64 (standard, padded)
//	"chat_template"  string
//	"generation"     any JSON: generation defaults
//	"provenance"     any JSON: source hashes, compressor version/settings, quality
//	"requires"       array of strings: features a reader must support
//	"tensors"        array of {"name": string, "shape": [int...],
//	                 "params": any JSON (codec parameters, opaque here),
//	                 "offset": int, "length": int, "crc32c": uint32}
//
// Why A = 4096: page alignment lets every tensor be mmapped, madvised or
// read with O_DIRECT / GPU direct storage on its own page range, and it
// subsumes the 64-byte (cache line, AVX-512) and 256-byte (GPU upload)
// alignments. The cost is at most A-1 bytes per tensor: about 0.5 MB for the
// ~250 tensors of a 14B model, negligible against gigabytes of data.
//
// # Versioning
//
// The first 8 bytes (magic, major, minor) keep their meaning in every
// version. A reader refuses a file whose major version differs from its own
// ("format version 2.0 is newer than this reader (1.x); upgrade upg"). Within
// a major version, a newer minor version may only add things an older reader
// can safely ignore: new JSON keys (top level or inside tensor entries). A
// change that an older reader must not ignore either bumps the major version,
// sets a preamble flag bit (for binary-level changes; readers refuse unknown
// bits), or lists a feature name in "requires" (for semantic changes, e.g.
// "codec:trellis"); readers refuse a file that requires a feature they have not
// registered with RegisterFeature.
package upgfile

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// Format constants.
const (
	Magic        = "UPG\x00"
	MajorVersion = 1
	MinorVersion = 0
	// Alignment is the tensor data alignment used by the writer.
	Alignment = 4096

	preambleSize = 32
	trailerSize  = 32
	minAlign     = 64
	maxAlign     = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Error kinds; errors returned by Open, Parse, Verify and Tensor wrap one of
// them (test with errors.Is).
var (
	ErrTruncated   = errors.New("truncated")
	ErrCorrupt     = errors.New("corrupt")
	ErrUnsupported = errors.New("unsupported")
)

// fileError is an error about one .upg file; its message is
// "upg: <name>: <msg>".
type fileError struct {
	name string
	kind error
	msg  string
}

func (e *fileError) Error() string { return "upg: " + e.name + ": " + e.msg }
func (e *fileError) Unwrap() error { return e.kind }

func truncated(name, format string, args ...any) error {
	return &fileError{name, ErrTruncated, "truncated: " + fmt.Sprintf(format, args...)}
}

func corrupt(name, format string, args ...any) error {
	return &fileError{name, ErrCorrupt, "corrupt: " + fmt.Sprintf(format, args...)}
}

func unsupported(name, format string, args ...any) error {
	return &fileError{name, ErrUnsupported, fmt.Sprintf(format, args...)}
}

// alignUp rounds n up to a multiple of a (a power of two); n must be far
// from overflow, which callers ensure by bounding n by the file size first.
func alignUp(n, a int64) int64 { return (n + a - 1) &^ (a - 1) }

// JSON keys of the header with a meaning in this version.
const (
	keyArchitecture = "architecture"
	keyTokenizer    = "tokenizer"
	keyChatTemplate = "chat_template"
	keyGeneration   = "generation"
	keyProvenance   = "provenance"
	keyRequires     = "requires"
	keyTensors      = "tensors"
)

var knownKeys = map[string]bool{
	keyArchitecture: true, keyTokenizer: true, keyChatTemplate: true,
	keyGeneration: true, keyProvenance: true, keyRequires: true, keyTensors: true,
}
