//! QEMU mps2-an386 serving firmware: answers `dropship validate` on UART0 (the model compiled in, no
//! test vectors), each inference's cost in instructions (SysTick under `-icount shift=0`); logs go
//! to semihosting as in the self-test.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use dropship_app::announce;
use dropship_app::serving::{hello, Serving};
use dropship_link::CostUnit;
use dropship_model::{ModelScratch, ModelServer, CLASSES, DIGEST, INPUT, NETWORK, SHAPE};
use dropship_qemu::{fail, instructions_per_tick, start_systick, ticks_now, ticks_since, uart};

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else { fail("core peripherals taken twice") };
    start_systick(&mut core.SYST);
    announce(&SHAPE);
    let per_tick = instructions_per_tick();
    let Some(scratch) = cortex_m::singleton!(: ModelScratch = ModelScratch::new()) else { fail("scratch taken twice") };
    let Some(server) = cortex_m::singleton!(: ModelServer = ModelServer::new()) else { fail("server taken twice") };
    let mut model = Serving::new(
        hello(&SHAPE, DIGEST, "qemu", CostUnit::Instructions),
        |input: &[f32; INPUT], logits: &mut [f32; CLASSES]| {
            let start = ticks_now();
            let class = black_box(&NETWORK).predict(black_box(input), scratch, logits);
            (class, (ticks_since(start) as f32 * per_tick + 0.5) as u32)
        },
    );
    let (mut rx, mut tx) = uart::take();
    defmt::info!("serving on UART0, model digest {=u64:#018x}", DIGEST);
    loop {
        let Ok(_) = server.poll(&mut rx, &mut tx, &mut model);
    }
}
