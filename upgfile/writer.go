package upgfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"unicode/utf8"
)

// Writer streams a .upg file: tensors are appended one at a time, metadata
// may be set at any point before Close, and the header is written at the
// end. Memory use is bounded by the directory and a 1 MiB buffer.
//
// The data goes to a temporary file "<name>.tmp-<random>" in the destination
// directory, which Close fsyncs and renames over the destination. Until then
// an existing file at the destination is untouched; Abort, or any I/O error,
// removes the temporary file, and RemovePartial removes those of every
// writer still open (for a process stopping on a signal). (A process killed
// mid-write can leave a stale temporary file, but never a partial file under
// the destination name.)
//
// A Writer is not safe for concurrent use.
type Writer struct {
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	off       int64 // bytes written so far
	tensors   []TensorEntry
	names     map[string]bool
	meta      map[string]json.RawMessage // encoded metadata keys
	err       error                      // sticky I/O error; temp file already removed
	done      bool                       // closed or aborted
}

// Create starts writing a .upg file that will appear at path on Close.
func Create(path string) (*Writer, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := createTracked(dir, base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("upg: create %s: %w", path, err)
	}
	w := &Writer{path: path, tmp: f.Name(), f: f, bw: bufio.NewWriterSize(f, 1<<20), names: map[string]bool{}}
	var pre [preambleSize]byte
	copy(pre[:], Magic)
	binary.LittleEndian.PutUint16(pre[4:], MajorVersion)
	binary.LittleEndian.PutUint16(pre[6:], MinorVersion)
	binary.LittleEndian.PutUint32(pre[12:], Alignment)
	binary.LittleEndian.PutUint32(pre[28:], crc(pre[:28]))
	if err := w.write(pre[:]); err != nil {
		return nil, err
	}
	return w, nil
}

// write appends p to the file, recording the first I/O error; on error the
// temporary file is removed.
func (w *Writer) write(p []byte) error {
	if _, err := w.bw.Write(p); err != nil {
		return w.fail(err)
	}
	w.off += int64(len(p))
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("upg: write %s: %w", w.path, err)
		w.f.Close()
		os.Remove(w.tmp)
		untrack(w.tmp)
	}
	return w.err
}

// liveTemps lists the temporary files of the writers not yet closed or
// aborted.
var liveTemps struct {
	sync.Mutex
	tmp map[string]bool
}

// createTracked creates a temporary file as os.CreateTemp does and lists it
// in liveTemps under the same lock, so that a RemovePartial on a signal that
// arrives while it is created waits and removes it (with the file created
// first and listed after, a signal between the two left the file behind:
// cli's TestSynthInterruptRemovesPartial on a loaded CI machine).
func createTracked(dir, pattern string) (*os.File, error) {
	liveTemps.Lock()
	defer liveTemps.Unlock()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if liveTemps.tmp == nil {
		liveTemps.tmp = map[string]bool{}
	}
	liveTemps.tmp[f.Name()] = true
	return f, nil
}

// untrack takes tmp off liveTemps (its writer closed, aborted or failed).
func untrack(tmp string) {
	liveTemps.Lock()
	defer liveTemps.Unlock()
	delete(liveTemps.tmp, tmp)
}

// RemovePartial removes the temporary files of every Writer not yet closed
// or aborted and returns their names, sorted: what a process stopping on a
// signal calls so that it leaves no partial file behind (the destinations
// are never partial either way). Those writers' later calls fail.
func RemovePartial() []string {
	liveTemps.Lock()
	defer liveTemps.Unlock()
	var names []string
	for tmp := range liveTemps.tmp {
		if os.Remove(tmp) == nil {
			names = append(names, tmp)
		}
		delete(liveTemps.tmp, tmp)
	}
	sort.Strings(names)
	return names
}

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("upg: write %s: writer already closed", w.path)
	}
	return nil
}

var zeros [Alignment]byte

// AddTensor appends a tensor. params are the codec parameters (any JSON, or
// nil); data is written to the file and not retained.
func (w *Writer) AddTensor(name string, shape []int, params json.RawMessage, data []byte) error {
	t, err := w.begin(name, shape, params, int64(len(data)))
	if err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		return err
	}
	w.finish(t, crc(data))
	return nil
}

// AddTensorFrom appends a tensor whose n data bytes are read from r. If r
// yields fewer than n bytes the writer fails: the temporary file is removed
// and every later call, Close included, returns the error.
func (w *Writer) AddTensorFrom(name string, shape []int, params json.RawMessage, r io.Reader, n int64) error {
	t, err := w.begin(name, shape, params, n)
	if err != nil {
		return err
	}
	var sum uint32
	buf := make([]byte, min(n, 1<<20))
	for left := n; left > 0; {
		k, err := io.ReadFull(r, buf[:min(left, int64(len(buf)))])
		sum = crc32.Update(sum, castagnoli, buf[:k])
		if werr := w.write(buf[:k]); werr != nil {
			return werr
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return w.fail(fmt.Errorf("tensor %q: reading data: %w", name, err))
		}
		left -= int64(k)
	}
	w.finish(t, sum)
	return nil
}

// begin validates a tensor's arguments and writes the padding before its
// data. Invalid arguments (empty or duplicate name, negative dimension or
// length, invalid params JSON) return an error without writing anything and
// leave the writer usable.
func (w *Writer) begin(name string, shape []int, params json.RawMessage, n int64) (TensorEntry, error) {
	if err := w.usable(); err != nil {
		return TensorEntry{}, err
	}
	if name == "" || !utf8.ValidString(name) {
		return TensorEntry{}, fmt.Errorf("upg: write %s: invalid tensor name %q", w.path, name)
	}
	if w.names[name] {
		return TensorEntry{}, fmt.Errorf("upg: write %s: duplicate tensor %q", w.path, name)
	}
	for _, d := range shape {
		if d < 0 {
			return TensorEntry{}, fmt.Errorf("upg: write %s: tensor %q: negative dimension in shape %v", w.path, name, shape)
		}
	}
	if n < 0 {
		return TensorEntry{}, fmt.Errorf("upg: write %s: tensor %q: negative length %d", w.path, name, n)
	}
	var p json.RawMessage
	if len(params) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, params); err != nil {
			return TensorEntry{}, fmt.Errorf("upg: write %s: tensor %q: params: %w", w.path, name, err)
		}
		if !bytes.Equal(buf.Bytes(), []byte("null")) {
			p = buf.Bytes()
		}
	}
	pad := alignUp(w.off, Alignment) - w.off
	if err := w.write(zeros[:pad]); err != nil {
		return TensorEntry{}, err
	}
	if shape == nil {
		shape = []int{}
	}
	return TensorEntry{Name: name, Shape: append([]int{}, shape...), Params: p, Offset: w.off, Length: n}, nil
}

func (w *Writer) finish(t TensorEntry, sum uint32) {
	t.CRC32C = sum
	w.tensors = append(w.tensors, t)
	w.names[t.Name] = true
}

// SetMetadata sets the metadata written by Close, replacing any earlier
// call; it may be called at any time before Close. m is encoded at once (so
// it may be modified afterwards); m.Version is ignored. It returns an error
// for invalid JSON in m's raw fields or Extra keys that collide with the
// standard ones.
func (w *Writer) SetMetadata(m Metadata) error {
	if err := w.usable(); err != nil {
		return err
	}
	enc, err := encodeMetadata(m, w.path)
	if err != nil {
		return err
	}
	w.meta = enc
	return nil
}

// HeaderSize is the number of bytes a Writer adds to its tensors' data
// (and the padding that aligns them) for metadata m and directory entries
// tensors: the preamble, the header and the trailer. The compressor uses it
// to plan a file's size before the tensors are encoded, with directory
// entries whose offsets, lengths and checksums are as wide as they will be.
func HeaderSize(m Metadata, tensors []TensorEntry) (int64, error) {
	enc, err := encodeMetadata(m, "")
	if err != nil {
		return 0, err
	}
	h, err := headerJSON(enc, tensors)
	if err != nil {
		return 0, err
	}
	return preambleSize + int64(len(h)) + trailerSize, nil
}

// encodeMetadata encodes m's keys as SetMetadata stores them (path names
// the file in errors).
func encodeMetadata(m Metadata, path string) (map[string]json.RawMessage, error) {
	enc := map[string]json.RawMessage{}
	put := func(key string, v any) error {
		b, err := marshal(v)
		if err != nil {
			return fmt.Errorf("upg: write %s: metadata %q: %w", path, key, err)
		}
		enc[key] = b
		return nil
	}
	var errs []error
	for _, raw := range []struct {
		key string
		v   json.RawMessage
	}{{keyArchitecture, m.Architecture}, {keyGeneration, m.Generation}, {keyProvenance, m.Provenance}} {
		if len(raw.v) > 0 {
			errs = append(errs, put(raw.key, raw.v))
		}
	}
	if len(m.Tokenizer) > 0 {
		errs = append(errs, put(keyTokenizer, m.Tokenizer))
	}
	if m.ChatTemplate != "" {
		if !utf8.ValidString(m.ChatTemplate) {
			errs = append(errs, fmt.Errorf("upg: write %s: chat template is not valid UTF-8", path))
		}
		errs = append(errs, put(keyChatTemplate, m.ChatTemplate))
	}
	if len(m.Requires) > 0 {
		errs = append(errs, put(keyRequires, m.Requires))
	}
	for k, v := range m.Extra {
		if knownKeys[k] {
			errs = append(errs, fmt.Errorf("upg: write %s: extra metadata key %q collides with a standard key", path, k))
			continue
		}
		errs = append(errs, put(k, v))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return enc, nil
}

// headerJSON is the header: the encoded metadata keys and the directory.
func headerJSON(meta map[string]json.RawMessage, tensors []TensorEntry) ([]byte, error) {
	top := map[string]json.RawMessage{}
	for k, v := range meta {
		top[k] = v
	}
	if tensors == nil {
		tensors = []TensorEntry{}
	}
	b, err := marshal(tensors)
	if err != nil {
		return nil, err
	}
	top[keyTensors] = b
	return marshal(top)
}

// marshal encodes v as compact JSON without HTML escaping (chat templates
// are full of '<' and '>').
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Close writes the header and trailer, fsyncs the file and renames it to
// the destination path (replacing any existing file), then fsyncs the
// directory. On error the temporary file is removed and the destination is
// left as it was. Calling Close after a successful Close or Abort returns an
// error; calling Abort after Close is a no-op, so `defer w.Abort()` is safe.
func (w *Writer) Close() error {
	if err := w.usable(); err != nil {
		return err
	}
	header, err := headerJSON(w.meta, w.tensors)
	if err != nil {
		return w.fail(err)
	}
	hoff := w.off
	if err := w.write(header); err != nil {
		return err
	}
	var tr [trailerSize]byte
	binary.LittleEndian.PutUint64(tr[0:], uint64(hoff))
	binary.LittleEndian.PutUint64(tr[8:], uint64(len(header)))
	binary.LittleEndian.PutUint32(tr[16:], crc(header))
	binary.LittleEndian.PutUint32(tr[24:], crc(tr[:24]))
	copy(tr[28:], Magic)
	if err := w.write(tr[:]); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Chmod(0o644); err != nil {
		return w.fail(err)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Close(); err != nil {
		return w.fail(err)
	}
	if err := os.Rename(w.tmp, w.path); err != nil {
		return w.fail(err)
	}
	untrack(w.tmp)
	w.done = true
	// Make the rename durable. The file is complete and in place either
	// way, so a failure here is reported but nothing is removed.
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("upg: write %s: sync directory: %w", w.path, err)
		}
	}
	return nil
}

// Abort discards the file being written: the temporary file is removed and
// the destination is left as it was. It is a no-op after Close or Abort.
func (w *Writer) Abort() error {
	if w.done || w.err != nil {
		return nil
	}
	w.done = true
	w.f.Close()
	untrack(w.tmp)
	if err := os.Remove(w.tmp); err != nil {
		return fmt.Errorf("upg: abort %s: %w", w.path, err)
	}
	return nil
}
