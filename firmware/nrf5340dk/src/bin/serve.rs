//! nRF5340-DK serving firmware (application core, secure state): answers `dropship validate` on
//! UARTE0 through the DK's virtual COM port (P0.20 TXD, P0.22 RXD, 115200 baud), each
//! inference's cost in DWT cycles; logs over RTT with defmt.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::announce;
use dropship_link::CostUnit;
use dropship_model::{Model, Server, DIGEST, SHAPE};
use nrf5340_app_hal::gpio::{p0_s, Level};
use nrf5340_app_hal::pac;
use nrf5340_app_hal::uarte::{Baudrate, Parity, Pins, Uarte};
use panic_probe as _;

/// The UARTE's transmit DMA buffer (answers go out in chunks of this size).
const TX_CHUNK: usize = 64;

#[entry]
fn main() -> ! {
    let p = pac::Peripherals::take().expect("taken once");
    let mut core = pac::CorePeripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    let port0 = p0_s::Parts::new(p.P0_S);
    let pins = Pins {
        txd: port0.p0_20.into_push_pull_output(Level::High).degrade(),
        rxd: port0.p0_22.into_floating_input().degrade(),
        cts: None,
        rts: None,
    };
    let uarte = Uarte::new(p.UARTE0_S, pins, Parity::EXCLUDED, Baudrate::BAUD115200);
    let tx_buf = cortex_m::singleton!(: [u8; TX_CHUNK] = [0; TX_CHUNK]).expect("taken once");
    let rx_buf = cortex_m::singleton!(: [u8; 1] = [0; 1]).expect("taken once");
    let (mut tx, mut rx) = uarte.split(tx_buf, rx_buf).expect("the buffers are in RAM and short enough");

    announce(&SHAPE);
    let model = cortex_m::singleton!(: Model = Model::new()).expect("taken once");
    let server = cortex_m::singleton!(: Server = Server::new()).expect("taken once");
    let mut served =
        model.served("nrf5340dk", CostUnit::Cycles, DWT::cycle_count, |from: u32, to: u32| to.wrapping_sub(from));
    defmt::info!("serving on the virtual COM port (UARTE0, 115200 baud), model digest {=u64:#018x}", DIGEST);
    loop {
        if server.poll(&mut rx, &mut tx, &mut served).is_err() {
            // A framing or overrun error loses bytes: the host sees a corrupted frame and asks again.
            defmt::warn!("UARTE error");
        }
    }
}
