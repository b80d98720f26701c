// The OpenCV DNN peer: OpenCV 4.6 (Debian armhf) imports the network from ONNX and runs it with its own CPU
// backend (DNN_BACKEND_OPENCV, DNN_TARGET_CPU) on `--threads` threads. Command line and output: peer_cli.h;
// --weights is not used (the ONNX file carries them). The first forward() also sets the network up (layer
// fusion, allocation), which is why the peers run warm-up inferences before the counted ones.
#include "peer_cli.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

int main(int argc, char **argv)
{
    return peer::guarded([&]
    {
        const peer::Options options = peer::parse(argc, argv);
        std::vector<float>  input   = peer::read_floats(options.input, options.input_size());

        cv::setNumThreads(static_cast<int>(options.threads));
        cv::dnn::Net net = cv::dnn::readNetFromONNX(options.model);
        net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
        const int dims[] = { 1, static_cast<int>(options.channels), static_cast<int>(options.height), static_cast<int>(options.width) };
        net.setInput(cv::Mat(4, dims, CV_32F, input.data()));

        cv::Mat output;
        const std::vector<double> times = peer::measure(options, [&] { output = net.forward(); });
        if(!output.isContinuous() || output.type() != CV_32F)
        {
            throw peer::Error("unexpected output blob type");
        }
        peer::write_floats(options.output, output.ptr<float>(), output.total());
        peer::report(times, { "\"opencv\": \"" + std::string(CV_VERSION) + "\"",
                              "\"threads\": " + std::to_string(cv::getNumThreads()) });
    });
}
