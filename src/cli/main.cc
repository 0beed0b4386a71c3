// The `referee` command: parses the command line, dispatches to one subcommand file each, and turns
// every referee::Error into "referee: error: <message>" with exit status 2.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <new>

#include "cli/commands.h"
#include "engine/blas_tuning.h"
#include "util/allocator.h"
#include "util/error.h"
#include "util/version.h"

int main(int argc, char** argv) {
  referee::keep_freed_memory_for_reuse();  // see util/allocator.h
  referee::engine::configure_blas(argv);  // may re-execute once; see blas_tuning.h
  CLI::App app{"referee — originality verification and evaluation of foundation models"};
  app.set_version_flag("--version", fmt::format("referee {} ({})", referee::kVersion,
                                                referee::kGitHash));
  app.require_subcommand(1);
  referee::cli::register_inspect(app);
  referee::cli::register_train(app);
  referee::cli::register_generate(app);
  referee::cli::register_serve_model(app);
  referee::cli::register_zoo(app);
  referee::cli::register_trace(app);
  referee::cli::register_eval(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0 in CLI11.
    if (e.get_exit_code() == 0) return app.exit(e);
    fmt::print(stderr, "referee: error: {}\nRun 'referee --help' for usage.\n", e.what());
    return 2;
  }
  try {
    return referee::cli::run_selected(app);
  } catch (const referee::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "referee: error: {}\n", e.message());
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "referee: error: out of memory\n");
    return 3;
  } catch (const std::exception& e) {
    fmt::print(stderr, "referee: internal error: {}\n", e.what());
    return 3;
  }
}
