//! QEMU mps2-an386 self-test firmware: logs the model, runs every embedded vector, compares with the
//! host, counts instructions per inference with SysTick under `-icount shift=0`, exits 0 on a full
//! match.
#![no_std]
#![no_main]

use dropship_qemu as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    dropship_emulated::self_test()
}
