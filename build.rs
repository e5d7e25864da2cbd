// include_dir! cannot tell cargo which files it read, so without this an edited prompt would not be re-embedded.
fn main() {
    println!("cargo:rerun-if-changed=prompts");
}
