// The engine's command line, the same for every generated network:
//   <model> [--weights FILE] --input IN.f32 --output OUT.f32 [--threads N] [--runs N] [--warmup N]
//           [--json] [--profile]
#include "engine.h"
#include "tensor_io.h"
#include "weight_file.h"

#include "arm_compute/runtime/Scheduler.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

namespace
{
using Clock = std::chrono::steady_clock;

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
};

const char kUsage[] = "usage: %s [--weights FILE] --input IN.f32 --output OUT.f32 [--threads N] [--runs N] "
                      "[--warmup N] [--json] [--profile]\n";

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
        if(flag == "--json" || flag == "--profile")
        {
            (flag == "--json" ? options.json : options.profile) = true;
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

/** The weight file built beside the binary, found from any working directory. */
std::string default_weights(const char *model)
{
    char      path[4096];
    ssize_t   size = readlink("/proc/self/exe", path, sizeof(path) - 1);
    std::string dir = ".";
    if(size > 0)
    {
        std::string exe(path, static_cast<size_t>(size));
        dir = exe.substr(0, exe.find_last_of('/'));
    }
    return dir + "/" + model + ".weights";
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

int run(int argc, char **argv)
{
    const Options options = parse(argc, argv);
    auto          network = engine::make_network();
    const std::string weights = options.weights.empty() ? default_weights(network->name()) : options.weights;

    const unsigned threads = options.threads ? options.threads : std::max(1U, std::thread::hardware_concurrency());
    arm_compute::Scheduler::get().set_num_threads(threads);

    const auto start_load = Clock::now();
    network->configure();
    const std::vector<engine::WeightBinding> bindings = network->weights();
    engine::load_weights(weights, bindings);
    const std::vector<float> input = engine::read_floats(options.input, network->input().info()->tensor_shape().total_size(), "input tensor");
    engine::copy_into(network->input(), input.data());

    // Weight transformations (GEMM reshapes, Winograd transforms) happen here, once, outside the timed runs.
    const std::vector<engine::Layer> layers = network->layers();
    for(const engine::Layer &layer : layers)
    {
        layer.function->prepare();
    }
    for(const engine::WeightBinding &binding : bindings)
    {
        if(!binding.tensor->is_used())
        {
            binding.tensor->allocator()->free();
        }
    }
    const double load_ms = ms_since(start_load);

    std::vector<std::vector<double>> layer_ms(layers.size());
    std::vector<double>              run_ms;
    double                           cpu_start = 0;
    for(unsigned r = 0; r < options.warmup + options.runs; ++r)
    {
        if(r == options.warmup)
        {
            cpu_start = cpu_seconds();
        }
        const auto start_run = Clock::now();
        for(size_t i = 0; i < layers.size(); ++i)
        {
            const auto start_layer = Clock::now();
            layers[i].function->run();
            if(r >= options.warmup)
            {
                layer_ms[i].push_back(ms_since(start_layer));
            }
        }
        if(r >= options.warmup)
        {
            run_ms.push_back(ms_since(start_run));
        }
    }
    const double cpu_ms    = 1000.0 * (cpu_seconds() - cpu_start);
    const double wall_ms   = std::accumulate(run_ms.begin(), run_ms.end(), 0.0);
    const std::vector<float> probabilities = engine::copy_out(network->output());
    engine::write_floats(options.output, probabilities);

    std::vector<size_t> order(probabilities.size());
    std::iota(order.begin(), order.end(), 0);
    const size_t top = std::min<size_t>(5, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                      [&](size_t a, size_t b) { return probabilities[a] > probabilities[b]; });

    std::map<std::string, double> group_ms;
    for(size_t i = 0; i < layers.size(); ++i)
    {
        group_ms[layers[i].group] += stats(layer_ms[i]).median;
    }
    const Stats total = stats(run_ms);
    std::cout.precision(6);
    if(options.json)
    {
        std::cout << "{\"model\": \"" << network->name() << "\", \"threads\": " << threads << ", \"runs\": " << options.runs
                  << ", \"warmup\": " << options.warmup << ",\n \"top5\": [";
        for(size_t k = 0; k < top; ++k)
        {
            std::cout << (k ? ", " : "") << "[" << order[k] << ", " << probabilities[order[k]] << "]";
        }
        std::cout << "],\n \"times_ms\": " << json_list(run_ms) << ", \"median_ms\": " << total.median
                  << ", \"load_ms\": " << load_ms << ", \"cpu_utilization\": " << (wall_ms > 0 ? cpu_ms / wall_ms : 0.0)
                  << ", \"peak_rss_kb\": " << peak_rss_kb() << ",\n \"groups_ms\": {";
        for(auto it = group_ms.begin(); it != group_ms.end(); ++it)
        {
            std::cout << (it == group_ms.begin() ? "" : ", ") << "\"" << it->first << "\": " << it->second;
        }
        std::cout << "},\n \"layers\": [";
        for(size_t i = 0; i < layers.size(); ++i)
        {
            const Stats s = stats(layer_ms[i]);
            std::cout << (i ? ",\n  " : "\n  ") << "{\"name\": \"" << layers[i].name << "\", \"group\": \"" << layers[i].group
                      << "\", \"median_ms\": " << s.median << ", \"min_ms\": " << s.min << ", \"max_ms\": " << s.max << "}";
        }
        std::cout << "]}\n";
        return 0;
    }
    std::printf("%s: %u thread(s), %u run(s) after %u warm-up: median %.2f ms (min %.2f, max %.2f)\n", network->name(), threads,
                options.runs, options.warmup, total.median, total.min, total.max);
    for(size_t k = 0; k < top; ++k)
    {
        std::printf("  class %4zu  p=%.6f\n", order[k], static_cast<double>(probabilities[order[k]]));
    }
    if(options.profile)
    {
        std::printf("  %-24s %-18s %10s %10s %10s\n", "layer", "group", "median ms", "min ms", "max ms");
        for(size_t i = 0; i < layers.size(); ++i)
        {
            const Stats s = stats(layer_ms[i]);
            std::printf("  %-24s %-18s %10.3f %10.3f %10.3f\n", layers[i].name, layers[i].group, s.median, s.min, s.max);
        }
        for(const auto &group : group_ms)
        {
            std::printf("  %-43s %10.3f\n", group.first.c_str(), group.second);
        }
    }
    std::printf("  peak RSS %ld kB, CPU utilisation %.2f cores\n", peak_rss_kb(), wall_ms > 0 ? cpu_ms / wall_ms : 0.0);
    return 0;
}
} // namespace

int main(int argc, char **argv)
{
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
