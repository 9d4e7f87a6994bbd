//! Stage 3, deployment: export to an artifact (and checked ONNX), ONNX import, int8 quantization,
//! the commands that read an artifact (`predict`, `inspect`, `vectors`), and validation on a device
//! over a serial link. Depends on training (a run is what it exports), data and the foundation.

pub mod artifact_commands;
pub mod device_link;
pub mod export;
pub mod onnx;
pub mod quantize;
pub mod validate;
