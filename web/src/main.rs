//! Entry point of the site: mounts the app; every component lives in the library.

fn main() {
    headroom_web::mount();
}
