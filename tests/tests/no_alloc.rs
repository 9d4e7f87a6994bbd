//! Inference allocates nothing: counted by a global allocator around `Network::predict`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dropship_shared::{Artifact, OneHidden, Scratch};
use dropship_tests::fixture;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; counting has no effect on it
unsafe impl GlobalAlloc for Counting {
    /// # Safety
    /// `GlobalAlloc::alloc`'s: `layout` has a non-zero size.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on
        unsafe { System.alloc(layout) }
    }
    /// # Safety
    /// `GlobalAlloc::dealloc`'s: `ptr` was allocated by this allocator with `layout`.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on (`alloc` got it from the system allocator)
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn inference_makes_zero_allocations() {
    let f = fixture();
    let mut net = Box::new(OneHidden::<64, 128, 10>::ZERO);
    Artifact::parse(&f.artifact).unwrap().load_into(&mut net).unwrap();
    let rows: Vec<[f32; 64]> = f.test_rows().map(|r| r.try_into().unwrap()).collect();
    let mut scratch = Scratch::<64, 128>::new();
    let mut logits = [0.0; 10];
    let before = allocations();
    let mut classes = 0;
    for row in &rows {
        classes += net.predict(row, &mut scratch, &mut logits);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "allocations during {} inferences", rows.len());
    // the counter works: a Vec allocates
    let v = std::hint::black_box(vec![classes]);
    assert_eq!(allocations() - after, 1);
    drop(v);
}
