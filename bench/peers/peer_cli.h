// peer_cli.h: command line, file I/O and the measured loop shared by the C++ peer programs (bench/peers/).
//
//   PROG [--model FILE] [--weights FILE] --shape C,H,W --input IN.f32 --output OUT.f32 [--runs N] [--warmup N]
//        [--threads N]
//
// The protocol is bench/peers/base.py's: `warmup` untimed inferences, then `runs` timed ones, each between
// insn_marker(kInferenceBegin) and insn_marker(kInferenceEnd) (the ids of our engine, runtime/main.cpp); the last
// output goes to OUT.f32 as raw float32; stdout gets one JSON line {"times_ms": [...], <peer facts>}. --model is
// for the peers that read a model file (the generated plain C++ peer has its network compiled in).
#ifndef PEER_CLI_H
#define PEER_CLI_H

#include "insn_marker.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace peer
{
constexpr unsigned kInferenceBegin = 0x10000;
constexpr unsigned kInferenceEnd   = 0x10001;

struct Options
{
    std::string model;
    std::string weights;
    std::string input;
    std::string output;
    unsigned    channels{ 0 }, height{ 0 }, width{ 0 };
    unsigned    runs{ 1 };
    unsigned    warmup{ 1 };
    unsigned    threads{ 1 };

    size_t input_size() const
    {
        return static_cast<size_t>(channels) * height * width;
    }
};

/** A bad command line or input: main() prints it after "error: " and exits 1. */
struct Error : std::runtime_error
{
    using std::runtime_error::runtime_error;
};

inline unsigned parse_unsigned(const std::string &flag, const std::string &text)
{
    char         *end   = nullptr;
    unsigned long value = std::strtoul(text.c_str(), &end, 10);
    if(text.empty() || *end != '\0' || value > 1000000)
    {
        throw Error(flag + ": not a count: '" + text + "'");
    }
    return static_cast<unsigned>(value);
}

inline Options parse(int argc, char **argv)
{
    Options options;
    for(int i = 1; i < argc; ++i)
    {
        const std::string flag = argv[i];
        if(i + 1 >= argc)
        {
            throw Error(flag + ": missing value");
        }
        const std::string value = argv[++i];
        if(flag == "--model")
            options.model = value;
        else if(flag == "--weights")
            options.weights = value;
        else if(flag == "--input")
            options.input = value;
        else if(flag == "--output")
            options.output = value;
        else if(flag == "--runs")
            options.runs = parse_unsigned(flag, value);
        else if(flag == "--warmup")
            options.warmup = parse_unsigned(flag, value);
        else if(flag == "--threads")
            options.threads = parse_unsigned(flag, value);
        else if(flag == "--shape")
        {
            char comma1 = 0, comma2 = 0;
            std::istringstream in(value);
            if(!(in >> options.channels >> comma1 >> options.height >> comma2 >> options.width) || comma1 != ','
               || comma2 != ',' || options.input_size() == 0)
            {
                throw Error("--shape: want C,H,W, got '" + value + "'");
            }
        }
        else
            throw Error("unknown option " + flag);
    }
    if(options.input.empty() || options.output.empty() || options.input_size() == 0)
    {
        throw Error("usage: " + std::string(argv[0]) + " [--model FILE] [--weights FILE] --shape C,H,W --input IN.f32 "
                    "--output OUT.f32 [--runs N] [--warmup N] [--threads N]");
    }
    if(options.runs == 0)
    {
        throw Error("--runs must be at least 1");
    }
    return options;
}

/** A whole file of little-endian float32 values; `expected` (if non-zero) is the number it must hold. */
inline std::vector<float> read_floats(const std::string &path, size_t expected)
{
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if(!in)
    {
        throw Error(path + ": cannot open");
    }
    const auto bytes = static_cast<size_t>(in.tellg());
    if(bytes % sizeof(float) != 0 || (expected != 0 && bytes != expected * sizeof(float)))
    {
        throw Error(path + ": " + std::to_string(bytes) + " bytes, want " + std::to_string(expected) + " float32 values");
    }
    std::vector<float> values(bytes / sizeof(float));
    in.seekg(0);
    in.read(reinterpret_cast<char *>(values.data()), static_cast<std::streamsize>(bytes));
    return values;
}

inline void write_floats(const std::string &path, const float *values, size_t count)
{
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char *>(values), static_cast<std::streamsize>(count * sizeof(float)));
    if(!out)
    {
        throw Error(path + ": cannot write");
    }
}

/** warmup + runs calls of `infer`; the timed ones are marked for the instruction counter. Returns their times. */
inline std::vector<double> measure(const Options &options, const std::function<void()> &infer)
{
    std::vector<double> times;
    for(unsigned r = 0; r < options.warmup + options.runs; ++r)
    {
        const bool timed = r >= options.warmup;
        const auto start = std::chrono::steady_clock::now();
        if(timed)
            insn_marker(kInferenceBegin);
        infer();
        if(timed)
        {
            insn_marker(kInferenceEnd);
            times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
    }
    return times;
}

/** The JSON line on stdout: times plus `facts`, already-formatted JSON members ("\"key\": value"). */
inline void report(const std::vector<double> &times, const std::vector<std::string> &facts)
{
    std::printf("{\"times_ms\": [");
    for(size_t i = 0; i < times.size(); ++i)
        std::printf("%s%.3f", i ? ", " : "", times[i]);
    std::printf("]");
    for(const std::string &fact : facts)
        std::printf(", %s", fact.c_str());
    std::printf("}\n");
}

/** Runs a peer's main body; any exception becomes "error: ..." on stderr and exit status 1. */
inline int guarded(const std::function<void()> &body)
{
    try
    {
        body();
        return 0;
    }
    catch(const std::exception &error)
    {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
}
} // namespace peer

#endif // PEER_CLI_H
