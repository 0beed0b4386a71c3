#include "engine/blas_tuning.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "util/cpu_features.h"

namespace referee::engine {

const char* blas_kernel_name() { return openblas_get_corename(); }

void configure_blas(char** argv) {
  if (std::getenv("REFEREE_KEEP_BLAS_KERNELS") != nullptr) return;
  bool changed = false;
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    changed = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && cpu_features().avx512) {
    const char* name = openblas_get_corename();
    if (name != nullptr && std::strcmp(name, "Haswell") == 0) {
      ::setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
      changed = true;
    }
  }
  if (!changed) return;
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with OpenBLAS as it is; the code calls it single-threaded
  // all the same.
}

}  // namespace referee::engine
