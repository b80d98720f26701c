// The ONNX Runtime peer: ONNX Runtime 1.21 (Debian trixie armhf, C API) runs the ONNX model written from the peer
// network on one intra-op thread, with the CPU execution provider or, given `--weights xnnpack`, with the XNNPACK
// execution provider in front of it (what XNNPACK does not take falls back to the CPU provider). Command line and
// output: peer_cli.h; --weights names the execution provider here, since the ONNX file carries the weights.
//
// Which provider ran each node is not assumed: before the measured session, a second session with ORT's profiler
// on runs the model once, and the profile's node events (each names its "provider") are counted per provider;
// the report carries those counts per provider and operator ("nodes"), which bench/peers/onnxruntime checks.
#include "peer_cli.h"

#include <onnxruntime_c_api.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace
{
const OrtApi *ort = nullptr;

void check(OrtStatus *status)
{
    if(status != nullptr)
    {
        const std::string message = ort->GetErrorMessage(status);
        ort->ReleaseStatus(status);
        throw peer::Error("onnxruntime: " + message);
    }
}

OrtSessionOptions *session_options(const peer::Options &options, const std::string &provider)
{
    OrtSessionOptions *session_options = nullptr;
    check(ort->CreateSessionOptions(&session_options));
    check(ort->SetIntraOpNumThreads(session_options, static_cast<int>(options.threads)));
    check(ort->SetInterOpNumThreads(session_options, 1));
    check(ort->SetSessionExecutionMode(session_options, ORT_SEQUENTIAL));
    check(ort->SetSessionGraphOptimizationLevel(session_options, ORT_ENABLE_ALL));
    check(ort->AddSessionConfigEntry(session_options, "session.intra_op.allow_spinning", "0"));
    if(provider == "xnnpack")
    {
        const std::string threads   = std::to_string(options.threads);
        const char       *keys[]    = { "intra_op_num_threads" };
        const char       *values[]  = { threads.c_str() };
        check(ort->SessionOptionsAppendExecutionProvider(session_options, "XNNPACK", keys, values, 1));
    }
    else if(provider != "cpu")
    {
        throw peer::Error("--weights: want the execution provider 'cpu' or 'xnnpack', got '" + provider + "'");
    }
    return session_options;
}

struct Runner
{
    OrtSession *session{ nullptr };
    OrtValue   *input{ nullptr };
    OrtValue   *output{ nullptr };
    std::string input_name, output_name;

    void run()
    {
        const char *inputs[]  = { input_name.c_str() };
        const char *outputs[] = { output_name.c_str() };
        if(output != nullptr)
        {
            ort->ReleaseValue(output);
            output = nullptr;
        }
        check(ort->Run(session, nullptr, inputs, &input, 1, outputs, 1, &output));
    }

    ~Runner()
    {
        if(output != nullptr)
            ort->ReleaseValue(output);
        if(session != nullptr)
            ort->ReleaseSession(session);
    }
};

std::string name_of(OrtSession *session, bool input)
{
    OrtAllocator *allocator = nullptr;
    check(ort->GetAllocatorWithDefaultOptions(&allocator));
    char *name = nullptr;
    check(input ? ort->SessionGetInputName(session, 0, allocator, &name) : ort->SessionGetOutputName(session, 0, allocator, &name));
    std::string result(name);
    check(ort->AllocatorFree(allocator, name));
    return result;
}

void open(Runner &runner, OrtEnv *env, const peer::Options &options, OrtSessionOptions *session_options, OrtValue *input)
{
    check(ort->CreateSession(env, options.model.c_str(), session_options, &runner.session));
    runner.input       = input;
    runner.input_name  = name_of(runner.session, true);
    runner.output_name = name_of(runner.session, false);
}

/** The quoted value of `key` ("key" : "value") in profile[from, end); empty if the key is not there. */
std::string value_in(const std::string &profile, const std::string &key, size_t from, size_t end)
{
    const size_t at = profile.find(key, from);
    if(at == std::string::npos || at >= end)
        return std::string();
    const size_t open_quote  = profile.find('"', profile.find(':', at + key.size()) + 1);
    const size_t close_quote = profile.find('"', open_quote + 1);
    if(open_quote == std::string::npos || close_quote == std::string::npos || close_quote >= end)
        throw peer::Error("unreadable ORT profile entry");
    return profile.substr(open_quote + 1, close_quote - open_quote - 1);
}

/** Node events of an ORT profile, counted by provider and operator: {"XnnpackExecutionProvider/Conv": 12, ...}.
    The profile is a JSON array of events, each an object starting with "cat"; a node's event names its
    "op_name" and its "provider" among its args. */
std::map<std::string, int> providers_in_profile(const std::string &path)
{
    std::ifstream in(path);
    if(!in)
        throw peer::Error(path + ": cannot read the profile");
    std::stringstream text;
    text << in.rdbuf();
    const std::string profile = text.str();
    const std::string event   = "\"cat\"";
    std::map<std::string, int> counts;
    for(size_t start = profile.find(event); start != std::string::npos;)
    {
        const size_t      end = std::min(profile.find(event, start + event.size()), profile.size());
        const std::string op  = value_in(profile, "\"op_name\"", start, end);
        if(!op.empty())
        {
            const std::string provider = value_in(profile, "\"provider\"", start, end);
            ++counts[(provider.empty() ? std::string("unknown") : provider) + "/" + op];
        }
        start = end < profile.size() ? end : std::string::npos;
    }
    return counts;
}
} // namespace

int main(int argc, char **argv)
{
    return peer::guarded([&]
    {
        const peer::Options options  = peer::parse(argc, argv);
        const std::string   provider = options.weights.empty() ? "cpu" : options.weights;
        std::vector<float>  input    = peer::read_floats(options.input, options.input_size());

        ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
        if(ort == nullptr)
            throw peer::Error("onnxruntime: the library does not offer API version " + std::to_string(ORT_API_VERSION));
        OrtEnv *env = nullptr;
        check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "peer", &env));

        OrtMemoryInfo *memory = nullptr;
        check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
        const int64_t shape[] = { 1, options.channels, options.height, options.width };
        OrtValue *tensor = nullptr;
        check(ort->CreateTensorWithDataAsOrtValue(memory, input.data(), input.size() * sizeof(float), shape, 4,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &tensor));

        // The placement check: one profiled inference in a session of its own.
        std::map<std::string, int> placement;
        {
            OrtSessionOptions *profiled = session_options(options, provider);
            const std::string  prefix   = options.output + ".profile";
            check(ort->EnableProfiling(profiled, prefix.c_str()));
            Runner runner;
            open(runner, env, options, profiled, tensor);
            runner.run();
            OrtAllocator *allocator = nullptr;
            check(ort->GetAllocatorWithDefaultOptions(&allocator));
            char *file = nullptr;
            check(ort->SessionEndProfiling(runner.session, allocator, &file));
            placement = providers_in_profile(file);
            std::remove(file);
            check(ort->AllocatorFree(allocator, file));
            ort->ReleaseSessionOptions(profiled);
        }

        OrtSessionOptions  *measured = session_options(options, provider);
        std::vector<double> times;
        {
            Runner runner;
            open(runner, env, options, measured, tensor);
            times = peer::measure(options, [&] { runner.run(); });

            OrtTensorTypeAndShapeInfo *info = nullptr;
            check(ort->GetTensorTypeAndShape(runner.output, &info));
            size_t count = 0;
            check(ort->GetTensorShapeElementCount(info, &count));
            ort->ReleaseTensorTypeAndShapeInfo(info);
            float *values = nullptr;
            check(ort->GetTensorMutableData(runner.output, reinterpret_cast<void **>(&values)));
            peer::write_floats(options.output, values, count);
        }

        std::string nodes = "\"nodes\": {";
        for(auto it = placement.begin(); it != placement.end(); ++it)
            nodes += (it == placement.begin() ? "\"" : ", \"") + it->first + "\": " + std::to_string(it->second);
        nodes += "}";
        peer::report(times, { "\"onnxruntime\": \"" + std::string(OrtGetApiBase()->GetVersionString()) + "\"",
                              "\"provider\": \"" + provider + "\"", nodes,
                              "\"threads\": " + std::to_string(options.threads) });
        ort->ReleaseSessionOptions(measured);
        ort->ReleaseValue(tensor);
        ort->ReleaseMemoryInfo(memory);
        ort->ReleaseEnv(env);
    });
}
