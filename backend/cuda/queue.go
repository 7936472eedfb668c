//go:build linux && (amd64 || arm64)

package cuda

// Queueing. The backend's op methods queue closures that the next flush
// runs (or replays as a captured graph), and hash each op's kind and
// arguments into the queue's key. A step that repeats the calls of one
// before (every decode step of a batch size) used to build the same
// closures and pending fusions again only to throw them away when its graph
// replayed: 1,480 allocations and ~100 µs of a Phi-4 decode step on a 2-core
// VM while the GPU waited (BenchmarkQueueStep; NOTES.md run 73). So each op
// is kept by the key after it (b.made): an op method hashes first, and
// builds its closure and its pending fusion only when no step before has
// queued that key. The key is what a graph replays by already, so it names
// the launch a kept closure makes: each op hashes the buffers, step arrays
// and values its closure passes to the kernels; dropGraphs forgets the kept
// ops with the graphs (a workspace that grows moves what they hold).

const fnvOffset = 0xcbf29ce484222325

// madeMax bounds b.made (a Phi-4 step holds ~200 keys): past it the
// entries start over, those queued now stay valid.
const madeMax = 1 << 16

// queued is an op in the queue: its launch, and the fusion it leaves open
// to the op after it (nil when none).
type queued struct {
	run  func() error
	pend *pend
}

// enqueue hashes an op and its arguments into the key, appends the op kept
// for the new key and returns it; the caller fills in run (and pend) when
// they are nil, i.e. the first time. It ends any pending fusion (b.last).
func (b *Backend) enqueue(op uint64, args ...uint64) *queued {
	b.ops = append(b.ops, nil)
	return b.enqueueAt(len(b.ops)-1, op, args...)
}

// enqueueAt is enqueue for an op that takes the place of ops[i]: a fused
// op replacing the producer it fuses with.
func (b *Backend) enqueueAt(i int, op uint64, args ...uint64) *queued {
	b.hash(op, args...)
	b.last = nil
	q := b.entry()
	b.ops[i] = q
	return q
}

// enqueueOnce queues f, whose closure holds this step's data, as an op that
// is never reused.
func (b *Backend) enqueueOnce(op uint64, f func() error, args ...uint64) {
	b.hash(op, args...)
	b.last = nil
	b.ops = append(b.ops, &queued{run: f})
}

// entry is the op kept for the current key, new and empty the first time.
func (b *Backend) entry() *queued {
	if q, ok := b.made[b.key]; ok {
		return q
	}
	if len(b.made) >= madeMax {
		clear(b.made)
	}
	q := &queued{}
	b.made[b.key] = q
	return q
}

// hash feeds an op and its arguments into the queue's key.
func (b *Backend) hash(op uint64, args ...uint64) {
	k := b.key ^ op
	k *= 0x100000001b3
	for _, a := range args {
		k ^= a
		k *= 0x100000001b3
	}
	b.key = k
}
