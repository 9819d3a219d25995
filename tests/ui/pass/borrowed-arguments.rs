use memoflight::cached;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Config {
    level: u8,
}

#[cached]
fn by_ref(name: &str, bytes: &[u8], path: &Path, config: &Config) -> usize {
    name.len() + bytes.len() + path.as_os_str().len() + config.level as usize
}

fn main() {
    assert_eq!(by_ref("ab", &[1], Path::new("/x"), &Config { level: 1 }), 6);
    let key: (String, Vec<u8>, PathBuf, Config) =
        ("ab".into(), vec![1], PathBuf::from("/x"), Config { level: 1 });
    assert_eq!(by_ref_cache().remove(&key), Some(6));
}
