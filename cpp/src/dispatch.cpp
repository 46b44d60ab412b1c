// Run-time dispatch: which compiled target (target.hpp) this process uses.
//
// CMake defines FUSEDOPT_HAS_TARGET_<id> for every target it compiled (target.cpp, once
// each). The best one the CPU and its operating system run is chosen at the first call
// of active_target(); FUSEDOPT_TARGET=<name> in the environment asks for another, which is
// granted when it is compiled in and the CPU runs it, and otherwise noted (build_info()
// reports the note and fusedopt warns at import).
#include <cstdlib>
#include <string>
#include <vector>

#include "fusedopt/target.hpp"

namespace fusedopt {

#ifdef FUSEDOPT_HAS_TARGET_baseline
const TargetTable& target_table_baseline();
#endif
#ifdef FUSEDOPT_HAS_TARGET_v3
const TargetTable& target_table_v3();
#endif
#ifdef FUSEDOPT_HAS_TARGET_v4
const TargetTable& target_table_v4();
#endif
#ifdef FUSEDOPT_HAS_TARGET_native
const TargetTable& target_table_native();
#endif

namespace {

#if defined(__x86_64__) || defined(_M_X64)
#define FUSEDOPT_X86_64 1
#endif

bool cpu_has_v3() {
#if defined(FUSEDOPT_X86_64) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    // __builtin_cpu_supports reports AVX and AVX-512 only where the OS saves their registers.
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("avx") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

bool cpu_has_v4() {
#if defined(FUSEDOPT_X86_64) && (defined(__GNUC__) || defined(__clang__))
    return cpu_has_v3() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

std::string& note() {
    static std::string n;
    return n;
}

// Accepts the names build_info() shows and the short ones ("v3").
std::string canonical(std::string name) {
    if (name == "v3") return "x86-64-v3";
    if (name == "v4") return "x86-64-v4";
    if (name == "x86-64" || name == "v1" || name == "v2" || name == "x86-64-v2") return "baseline";
    return name;
}

const TargetTable* choose() {
    const auto& compiled = compiled_targets();
    const TargetTable* best = nullptr;
    for (const TargetTable* t : compiled)
        if (cpu_runs(t->name)) best = t;
    if (!best) best = compiled.front();  // the baseline runs anywhere
    const char* env = std::getenv("FUSEDOPT_TARGET");
    if (!env || !*env) return best;
    const std::string asked = canonical(env);
    std::string names;
    for (const TargetTable* t : compiled) {
        names += (names.empty() ? "" : ", ") + std::string(t->name);
        if (asked != t->name) continue;
        if (cpu_runs(t->name)) return t;
        note() = std::string("FUSEDOPT_TARGET=") + env + ": this CPU cannot run it; using " + best->name;
        return best;
    }
    note() = std::string("FUSEDOPT_TARGET=") + env + " is not a target of this build (" + names + "); using " + best->name;
    return best;
}

}  // namespace

const std::vector<const TargetTable*>& compiled_targets() {
    static const std::vector<const TargetTable*> all = {
#ifdef FUSEDOPT_HAS_TARGET_baseline
        &target_table_baseline(),
#endif
#ifdef FUSEDOPT_HAS_TARGET_native
        &target_table_native(),
#endif
#ifdef FUSEDOPT_HAS_TARGET_v3
        &target_table_v3(),
#endif
#ifdef FUSEDOPT_HAS_TARGET_v4
        &target_table_v4(),
#endif
    };
    return all;
}

bool cpu_runs(const std::string& name) {
    if (name == "x86-64-v3") return cpu_has_v3();
    if (name == "x86-64-v4") return cpu_has_v4();
    return name == "baseline" || name == "native";  // native: the build machine's own
}

const TargetTable& active_target() {
    static const TargetTable* active = choose();
    return *active;
}

const std::string& target_request_note() {
    active_target();
    return note();
}

}  // namespace fusedopt
