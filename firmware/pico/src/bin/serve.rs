//! Raspberry Pi Pico serving firmware: answers `dropship validate --port` on UART0 (GP0 TX, GP1
//! RX, 115200 baud: a USB-serial adapter or the Raspberry Pi Debug Probe's UART port), each
//! inference's cost in core cycles; logs over RTT with defmt.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::announce;
use dropship_link::CostUnit;
use dropship_model::{Model, Server, DIGEST, SHAPE};
use dropship_pico::{cycles_between, cycles_now};
use panic_probe as _;

#[entry]
fn main() -> ! {
    let pico = dropship_pico::init();
    let (mut rx, mut tx) = pico.uart.split();
    announce(&SHAPE);
    let model = cortex_m::singleton!(: Model = Model::new()).expect("taken once");
    let server = cortex_m::singleton!(: Server = Server::new()).expect("taken once");
    let mut served = model.served("pico", CostUnit::Cycles, cycles_now, cycles_between);
    defmt::info!("serving on UART0 (GP0/GP1, 115200 baud), model digest {=u64:#018x}", DIGEST);
    loop {
        if server.poll(&mut rx, &mut tx, &mut served).is_err() {
            // A framing or overrun error loses bytes: the host sees a corrupted frame and asks again.
            defmt::warn!("UART error");
        }
    }
}
