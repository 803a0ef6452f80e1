//! Docker Hub's names, in one place.
//!
//! Docker Hub answers to three host names: `docker.io`, the name references use (and the one a
//! short name such as `nginx` expands to); `index.docker.io`, docker's older name, still found in
//! charts and in Docker's credential files; and `registry-1.docker.io`, where its registry API
//! actually lives. A setting, a credential or a mirror override keyed by one of them must apply
//! to the others: `registries: {docker.io: ...}` in the config file was once never applied,
//! because requests looked their host up under the API's name.

/// The name references use for Docker Hub.
pub(crate) const HUB: &str = "docker.io";

/// Every name Docker Hub answers to, [`HUB`] first.
pub(crate) const ALIASES: [&str; 3] = [HUB, "index.docker.io", "registry-1.docker.io"];

/// Whether `host` is one of Docker Hub's names (host names compare without case).
pub(crate) fn is_hub(host: &str) -> bool {
    ALIASES.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// The name a host goes by in references and in settings: [`HUB`] for any of Docker Hub's
/// names, any other host as it is.
pub(crate) fn canonical(host: &str) -> &str {
    if is_hub(host) { HUB } else { host }
}

/// Where `host`'s registry API is served: Docker Hub's is not at the name references use.
pub(crate) fn api_host(host: &str) -> &str {
    if is_hub(host) {
        "registry-1.docker.io"
    } else {
        host
    }
}

/// The key Docker's credential files (`auths` in `config.json`, credential helpers) use for
/// `host`: Docker Hub keeps its historic v1 URL there.
pub(crate) fn credential_key(host: &str) -> &str {
    if is_hub(host) {
        "https://index.docker.io/v1/"
    } else {
        host
    }
}

/// Whether two host names name the same registry (`docker.io` and `registry-1.docker.io` do).
pub(crate) fn same_registry(a: &str, b: &str) -> bool {
    canonical(a).eq_ignore_ascii_case(canonical(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hub_name_is_one_registry() {
        for name in ALIASES.iter().chain(&["Docker.IO", "INDEX.docker.io"]) {
            assert!(is_hub(name), "{name}");
            assert_eq!(canonical(name), "docker.io", "{name}");
            assert_eq!(api_host(name), "registry-1.docker.io", "{name}");
            assert_eq!(
                credential_key(name),
                "https://index.docker.io/v1/",
                "{name}"
            );
            assert!(same_registry(name, "docker.io"), "{name}");
        }
    }

    #[test]
    fn other_hosts_are_themselves() {
        for name in [
            "quay.io",
            "reg.local:5000",
            "docker.io.example.com",
            "mydocker.io",
        ] {
            assert!(!is_hub(name), "{name}");
            assert_eq!(canonical(name), name);
            assert_eq!(api_host(name), name);
            assert_eq!(credential_key(name), name);
        }
        assert!(!same_registry("quay.io", "docker.io"));
        assert!(same_registry("Quay.io", "quay.io"));
    }
}
