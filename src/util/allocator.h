// How referee's processes configure glibc's allocator, set once at start-up by the `referee`
// command and by the benchmarks that time its work in-process (so they time what it does).
#pragma once

namespace referee {

// referee's working sets are buffers of a few megabytes allocated and freed over and over (a
// layer's matrices, a chunk of a tensor, a correlation matrix). glibc would map each one afresh
// and unmap it when freed, so every use paid for page faults and zeroing again (a fifth of trace's
// time); keeping freed memory for reuse costs no more peak memory than the largest working set.
void keep_freed_memory_for_reuse();

}  // namespace referee
