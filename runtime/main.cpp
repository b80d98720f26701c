// The engine's command line, the same for every generated network:
//   <model> [--weights FILE] --input IN.f32 --output OUT.f32 [--threads N] [--runs N] [--warmup N]
//           [--json] [--profile] [--progress]
// --progress prints `neoncc-progress DONE TOTAL` on stderr after each run (warm-up runs included).
// Without --weights the engine reads <this executable>.weights (SCons builds both from the model file's name).
// IN.f32 holds one input tensor, or several back to back (a batch along N); OUT.f32 gets one output per input.
#include "engine.h"
#include "tensor_io.h"
#include "weight_file.h"

#include "insn_marker.h"

#include "arm_compute/runtime/Scheduler.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

namespace
{
using Clock = std::chrono::steady_clock;

// Instruction-count markers (bench/qemu_plugin/insn_marker.h): layer i is marker i; an inference is bracketed by these.
constexpr unsigned kInferenceBegin = 0x10000;
constexpr unsigned kInferenceEnd   = 0x10001;

/** A command line we cannot read: reported with the usage line. */
class UsageError : public engine::Error
{
public:
    using engine::Error::Error;
};

struct Options
{
    std::string weights;
    std::string input;
    std::string output;
    unsigned    threads{ 0 };
    unsigned    runs{ 1 };
    unsigned    warmup{ 1 };
    bool        json{ false };
    bool        profile{ false };
    bool        progress{ false };
};

const char kUsage[] = "usage: %s [--weights FILE] --input IN.f32 --output OUT.f32 [--threads N] [--runs N] "
                      "[--warmup N] [--json] [--profile] [--progress]\n";

unsigned parse_count(const std::string &flag, const std::string &text, unsigned minimum)
{
    char         *end   = nullptr;
    unsigned long value = std::strtoul(text.c_str(), &end, 10);
    if(text.empty() || *end != '\0' || value < minimum || value > 100000)
    {
        throw UsageError(flag + " wants a whole number >= " + std::to_string(minimum) + ", got '" + text + "'");
    }
    return static_cast<unsigned>(value);
}

Options parse(int argc, char **argv)
{
    Options options;
    for(int i = 1; i < argc; ++i)
    {
        const std::string flag = argv[i];
        if(flag == "--json" || flag == "--profile" || flag == "--progress")
        {
            (flag == "--json" ? options.json : flag == "--profile" ? options.profile : options.progress) = true;
            continue;
        }
        if(i + 1 >= argc)
        {
            throw UsageError("unknown option or missing value: " + flag);
        }
        const std::string value = argv[++i];
        if(flag == "--weights")
            options.weights = value;
        else if(flag == "--input")
            options.input = value;
        else if(flag == "--output")
            options.output = value;
        else if(flag == "--threads")
            options.threads = parse_count(flag, value, 1);
        else if(flag == "--runs")
            options.runs = parse_count(flag, value, 1);
        else if(flag == "--warmup")
            options.warmup = parse_count(flag, value, 0);
        else
            throw UsageError("unknown option: " + flag);
    }
    if(options.input.empty() || options.output.empty())
    {
        throw UsageError("--input and --output are required");
    }
    return options;
}

/** The weight file built beside the binary under the binary's own name (SCons names both after the model file),
 *  found from any working directory. */
std::string default_weights()
{
    char    path[4096];
    ssize_t size = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if(size <= 0)
    {
        throw UsageError("cannot locate this executable (/proc/self/exe) to find its weight file; pass --weights");
    }
    return std::string(path, static_cast<size_t>(size)) + ".weights";
}

long peak_rss_kb()
{
    std::ifstream status("/proc/self/status");
    std::string   line;
    while(std::getline(status, line))
    {
        if(line.compare(0, 6, "VmHWM:") == 0)
        {
            return std::strtol(line.c_str() + 6, nullptr, 10);
        }
    }
    return -1;
}

double cpu_seconds()
{
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double ms_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Stats
{
    double median, min, max;
};

Stats stats(std::vector<double> values)
{
    std::sort(values.begin(), values.end());
    const size_t n      = values.size();
    const double median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
    return { median, values.front(), values.back() };
}

std::string json_list(const std::vector<double> &values)
{
    std::ostringstream out;
    out << "[";
    for(size_t i = 0; i < values.size(); ++i)
    {
        out << (i ? ", " : "") << values[i];
    }
    return out.str() + "]";
}

/** What the timed runs measured. */
struct Measurements
{
    std::vector<std::vector<double>> layer_ms; // per layer, one entry per timed inference
    std::vector<double>              inference_ms;
    double                           cpu_ms{ 0 };
    std::vector<float>               outputs; // the last run's outputs, one per input, concatenated
};

/** Runs every input through the network warmup + runs times, timing each inference and each layer. Markers let
 *  bench.insncount count guest instructions per inference and per layer under qemu (harmless elsewhere). */
Measurements measure(engine::Network &network, const std::vector<engine::Layer> &layers, const std::vector<float> &inputs, const Options &options)
{
    const size_t input_size = network.input().info()->tensor_shape().total_size();
    const size_t batch      = inputs.size() / input_size;
    Measurements m;
    m.layer_ms.resize(layers.size());
    std::vector<Clock::duration> layer_ticks(layers.size());
    double cpu_start = 0;
    for(unsigned r = 0; r < options.warmup + options.runs; ++r)
    {
        const bool timed = r >= options.warmup;
        if(r == options.warmup)
        {
            cpu_start = cpu_seconds();
        }
        for(size_t b = 0; b < batch; ++b)
        {
            engine::copy_into(network.input(), inputs.data() + b * input_size);
            const auto start = Clock::now();
            insn_marker(kInferenceBegin);
            for(size_t i = 0; i < layers.size(); ++i)
            {
                const auto start_layer = Clock::now();
                insn_marker(static_cast<unsigned>(i));
                layers[i].function->run();
                // Only the integer tick count inside the counted regions: converting it to double (libgcc's
                // __aeabi_l2d on armv7) takes more instructions past 2^32 ns, which made counts vary run to run.
                layer_ticks[i] = Clock::now() - start_layer;
            }
            insn_marker(kInferenceEnd);
            if(timed)
            {
                m.inference_ms.push_back(ms_since(start));
                for(size_t i = 0; i < layers.size(); ++i)
                {
                    m.layer_ms[i].push_back(std::chrono::duration<double, std::milli>(layer_ticks[i]).count());
                }
            }
            if(r + 1 == options.warmup + options.runs)
            {
                const std::vector<float> output = engine::copy_out(network.output());
                m.outputs.insert(m.outputs.end(), output.begin(), output.end());
            }
        }
        if(options.progress)
        {
            // One line per finished run (warm-up included) for a host-side progress bar.
            std::fprintf(stderr, "neoncc-progress %u %u\n", r + 1, options.warmup + options.runs);
            std::fflush(stderr);
        }
    }
    m.cpu_ms = 1000.0 * (cpu_seconds() - cpu_start);
    return m;
}

std::vector<size_t> top_classes(const float *probabilities, size_t count, size_t k)
{
    std::vector<size_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    k = std::min(k, count);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](size_t a, size_t b) { return probabilities[a] > probabilities[b]; });
    order.resize(k);
    return order;
}

/** Memory the engine holds, by kind (the pool is laid out by tensor lifetimes; see the generated network). */
struct Footprint
{
    size_t weights_bytes;
    size_t activation_pool_bytes;
};

void print_json(const engine::Network &network, const std::vector<engine::Layer> &layers, const Measurements &m, const Options &options, unsigned threads,
                double load_ms, size_t batch, const Footprint &footprint)
{
    const size_t  classes   = m.outputs.size() / batch;
    const double  wall_ms   = std::accumulate(m.inference_ms.begin(), m.inference_ms.end(), 0.0);
    std::map<std::string, double> group_ms;
    for(size_t i = 0; i < layers.size(); ++i)
    {
        group_ms[layers[i].group] += stats(m.layer_ms[i]).median;
    }
    std::cout << "{\"model\": \"" << network.name() << "\", \"threads\": " << threads << ", \"runs\": " << options.runs
              << ", \"warmup\": " << options.warmup << ", \"batch\": " << batch << ", \"output\": \""
              << (network.output_is_probabilities() ? "probabilities" : "scores") << "\",\n \"top5\": [";
    const std::vector<size_t> top = top_classes(m.outputs.data(), classes, 5);
    for(size_t k = 0; k < top.size(); ++k)
    {
        std::cout << (k ? ", " : "") << "[" << top[k] << ", " << m.outputs[top[k]] << "]";
    }
    std::cout << "],\n \"top1\": [";
    for(size_t b = 0; b < batch; ++b)
    {
        std::cout << (b ? ", " : "") << top_classes(m.outputs.data() + b * classes, classes, 1)[0];
    }
    std::cout << "],\n \"times_ms\": " << json_list(m.inference_ms) << ", \"median_ms\": " << stats(m.inference_ms).median
              << ", \"load_ms\": " << load_ms << ", \"cpu_utilization\": " << (wall_ms > 0 ? m.cpu_ms / wall_ms : 0.0)
              << ", \"peak_rss_kb\": " << peak_rss_kb() << ", \"weights_bytes\": " << footprint.weights_bytes
              << ", \"activation_pool_bytes\": " << footprint.activation_pool_bytes << ",\n \"groups_ms\": {";
    for(auto it = group_ms.begin(); it != group_ms.end(); ++it)
    {
        std::cout << (it == group_ms.begin() ? "" : ", ") << "\"" << it->first << "\": " << it->second;
    }
    std::cout << "},\n \"layers\": [";
    for(size_t i = 0; i < layers.size(); ++i)
    {
        const Stats s = stats(m.layer_ms[i]);
        std::cout << (i ? ",\n  " : "\n  ") << "{\"name\": \"" << layers[i].name << "\", \"group\": \"" << layers[i].group
                  << "\", \"median_ms\": " << s.median << ", \"min_ms\": " << s.min << ", \"max_ms\": " << s.max << "}";
    }
    std::cout << "]}\n";
}

void print_text(const engine::Network &network, const std::vector<engine::Layer> &layers, const Measurements &m, const Options &options, unsigned threads,
                size_t batch, const Footprint &footprint)
{
    const size_t classes = m.outputs.size() / batch;
    const Stats  total   = stats(m.inference_ms);
    const double wall_ms = std::accumulate(m.inference_ms.begin(), m.inference_ms.end(), 0.0);
    std::printf("%s: %u thread(s), %u run(s) after %u warm-up, %zu input(s): median %.2f ms (min %.2f, max %.2f)\n", network.name(), threads,
                options.runs, options.warmup, batch, total.median, total.min, total.max);
    for(size_t b = 0; b < batch; ++b)
    {
        for(size_t k : top_classes(m.outputs.data() + b * classes, classes, batch == 1 ? 5 : 1))
        {
            std::printf("  %sclass %4zu  %s=%.6f\n", batch == 1 ? "" : ("input " + std::to_string(b) + ": ").c_str(), k,
                        network.output_is_probabilities() ? "p" : "score", static_cast<double>(m.outputs[b * classes + k]));
        }
    }
    if(options.profile)
    {
        std::map<std::string, double> group_ms;
        std::printf("  %-32s %-18s %10s %10s %10s\n", "layer", "group", "median ms", "min ms", "max ms");
        for(size_t i = 0; i < layers.size(); ++i)
        {
            const Stats s = stats(m.layer_ms[i]);
            group_ms[layers[i].group] += s.median;
            std::printf("  %-32s %-18s %10.3f %10.3f %10.3f\n", layers[i].name, layers[i].group, s.median, s.min, s.max);
        }
        for(const auto &group : group_ms)
        {
            std::printf("  %-51s %10.3f\n", group.first.c_str(), group.second);
        }
    }
    std::printf("  peak RSS %ld kB (weights %zu kB, activation pool %zu kB), CPU utilisation %.2f cores\n", peak_rss_kb(),
                footprint.weights_bytes / 1024, footprint.activation_pool_bytes / 1024, wall_ms > 0 ? m.cpu_ms / wall_ms : 0.0);
}

int run(int argc, char **argv)
{
    const Options options = parse(argc, argv);
    auto          network = engine::make_network();
    const std::string weights = options.weights.empty() ? default_weights() : options.weights;

    const unsigned threads = options.threads ? options.threads : std::max(1U, std::thread::hardware_concurrency());
    arm_compute::Scheduler::get().set_num_threads(threads);

    const auto start_load = Clock::now();
    network->configure();
    const std::vector<engine::WeightBinding> bindings = network->weights();
    engine::load_weights(weights, bindings);
    const size_t             input_size = network->input().info()->tensor_shape().total_size();
    const std::vector<float> inputs     = engine::read_floats(options.input, input_size, "input tensor");

    // Weight transformations (GEMM reshapes, Winograd transforms) happen here, once, outside the timed runs.
    const std::vector<engine::Layer> layers = network->layers();
    engine::copy_into(network->input(), inputs.data());
    for(const engine::Layer &layer : layers)
    {
        layer.function->prepare();
    }
    size_t       weights_bytes = 0;
    for(const engine::WeightBinding &binding : bindings)
    {
        weights_bytes += binding.tensor->info()->tensor_shape().total_size() * binding.tensor->info()->element_size();
    }
    for(const engine::WeightBinding &binding : bindings)
    {
        if(!binding.tensor->is_used())
        {
            binding.tensor->allocator()->free();
        }
    }
    const double load_ms = ms_since(start_load);

    const Measurements m = measure(*network, layers, inputs, options);
    engine::write_floats(options.output, m.outputs);
    const size_t    batch = inputs.size() / input_size;
    const Footprint footprint{ weights_bytes, network->activation_pool_bytes() };
    if(options.json)
    {
        print_json(*network, layers, m, options, threads, load_ms, batch, footprint);
    }
    else
    {
        print_text(*network, layers, m, options, threads, batch, footprint);
    }
    return 0;
}
} // namespace

int main(int argc, char **argv)
{
    for(int i = 1; i < argc; ++i)
    {
        if(std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
        {
            std::printf(kUsage, argv[0]);
            return 0;
        }
    }
    try
    {
        return run(argc, argv);
    }
    catch(const UsageError &err)
    {
        std::fprintf(stderr, "%s: error: %s\n", argv[0], err.what());
        std::fprintf(stderr, kUsage, argv[0]);
        return 2;
    }
    catch(const std::exception &err)
    {
        std::fprintf(stderr, "%s: error: %s\n", argv[0], err.what());
        return 1;
    }
}
