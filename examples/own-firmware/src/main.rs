//! A sensor application with a dropship model inside: it reads a frame from an I2C sensor
//! (embedded-hal), classifies it with the model `build.rs` generated, prints the answer, then serves
//! `dropship validate` on UART0 so the same firmware can be checked row by row against the host.
#![no_std]
#![no_main]

mod sensor;
mod uart;

/// The network, generated from the artifact by `dropship_build` in `build.rs`.
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use dropship_link::CostUnit;
use dropship_shared::Prediction;

#[entry]
fn main() -> ! {
    // The application: one frame from the sensor, classified.
    let mut camera = sensor::Camera::new(sensor::SimulatedBus);
    let mut model = model::Model::new();
    match camera.read_frame::<{ model::INPUT }>() {
        Ok(frame) => match model.predict(&frame) {
            Prediction::Class { class, .. } => hprintln!("sensor frame: class {}", class),
            Prediction::Binary { probability, positive } => hprintln!("sensor frame: p={} ({})", probability, positive),
            Prediction::Values(values) => hprintln!("sensor frame: {:?}", values),
            Prediction::Anomaly { score, anomalous } => hprintln!("sensor frame: score {} ({})", score, anomalous),
        },
        Err(e) => hprintln!("the sensor did not answer: {:?}", e),
    }

    // Validation: answer `dropship validate --device qemu --firmware <this ELF>` (or `--port` on a
    // board) on UART0. This board counts nothing, so each inference's cost is reported as uncounted.
    hprintln!("serving dropship validate on UART0, model digest {:#018x}", model::DIGEST);
    let mut server = model::Server::new();
    let (mut rx, mut tx) = uart::take();
    let mut served = model.served("own-firmware", CostUnit::Uncounted, || (), |(), ()| 0);
    let Ok(()) = dropship_link::serve(&mut server, &mut rx, &mut tx, &mut served);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("{}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
