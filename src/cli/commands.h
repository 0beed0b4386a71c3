// The subcommands of `referee`. Each lives in one file (cli/<name>.cc) that adds itself to the
// CLI11 app and attaches the function that runs it; the files only parse and print, the work is
// done by the rooms (io/, trace/, ...).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace referee::cli {

void register_inspect(CLI::App& app);
void register_train(CLI::App& app);
void register_generate(CLI::App& app);
void register_serve_model(CLI::App& app);
void register_zoo(CLI::App& app);
void register_trace(CLI::App& app);
void register_eval(CLI::App& app);

// Called by register_*: the function run when `sub` is the chosen subcommand.
void set_runner(CLI::App* sub, std::function<int()> run);
// Runs the chosen subcommand and returns the process exit status.
int run_selected(CLI::App& app);

}  // namespace referee::cli
