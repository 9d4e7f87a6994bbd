//! Writes this board's memory.x from firmware/boards.toml and checks the model fits it.
fn main() {
    dropship_board_list::configure_board();
}
