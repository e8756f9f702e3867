//! A `wasi:cli/command` component: valid WebAssembly, wrong world. Deploy
//! must refuse it.

fn main() {
    println!("I am a command, not a workflow");
}
