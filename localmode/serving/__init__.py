"""Local SageMaker endpoints: the inference pipeline's containers emulated in-process
(containers.py: SparkML Serving 3.3 over a Python MLeap runtime, mleap.py; built-in
XGBoost 1.7-1 with compiled trees, trees.py) behind a local sagemaker-runtime HTTP
server (server.py). Entry points: server.start_inference_server(region) for local
mode, server.start_server(resolver) in general, containers.InferencePipeline
.predict_csv_line(line) and latency.py for benchmarks."""
