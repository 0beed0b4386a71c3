#include "util/allocator.h"

#include <malloc.h>

namespace referee {

void keep_freed_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);  // blocks below 64 MiB come from the heap, not mmap
  mallopt(M_TRIM_THRESHOLD, 256 << 20);  // and up to 256 MiB of freed heap stays mapped
}

}  // namespace referee
