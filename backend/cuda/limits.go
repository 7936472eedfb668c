package cuda

// MemEnv names the environment variable that caps the device memory UPG
// takes (e.g. UPG_GPU_MEMORY=12GiB): allocations beyond it fail as if the
// card were that small, and the free memory the KV cache budget follows is
// what is left under it. For running beside other GPU work, and for testing
// what fits on a smaller card.
const MemEnv = "UPG_GPU_MEMORY"

// WorkspaceReserve is what a model needs on the device beside its weights
// and KV cache, about: activations, scratch for a prefill chunk, graphs.
const WorkspaceReserve = 512 << 20
