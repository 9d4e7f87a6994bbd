//! QEMU mps2-an386 serving firmware: answers `dropship validate` on UART0 (the model compiled in, no
//! test vectors), each inference's cost in instructions (SysTick under `-icount shift=0`); logs go
//! to semihosting as in the self-test.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use dropship_app::announce;
use dropship_link::CostUnit;
use dropship_model::{Model, Server, DIGEST, SHAPE};
use dropship_qemu::{fail, instructions_per_tick, start_systick, ticks_now, ticks_since, uart};

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else { fail("core peripherals taken twice") };
    start_systick(&mut core.SYST);
    announce(&SHAPE);
    let per_tick = instructions_per_tick();
    let Some(model) = cortex_m::singleton!(: Model = Model::new()) else { fail("model taken twice") };
    let Some(server) = cortex_m::singleton!(: Server = Server::new()) else { fail("server taken twice") };
    let mut served = model
        .served("qemu", CostUnit::Instructions, ticks_now, |start| (ticks_since(start) as f32 * per_tick + 0.5) as u32);
    let (mut rx, mut tx) = uart::take();
    defmt::info!("serving on UART0, model digest {=u64:#018x}", DIGEST);
    let Ok(()) = dropship_link::serve(server, &mut rx, &mut tx, &mut served);
    fail("UART0 ended")
}
