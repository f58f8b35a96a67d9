//! Validation and normalisation of image references in FROM and `--from`, following the grammar
//! of distribution/reference (`ParseNormalizedNamed` + `TagNameOnly`): BuildKit rejects a bad
//! reference for every stage, reachable or not, before it builds anything.
//!
//! This is the front end's check only; the registry client has its own typed reference.

/// `alpine` → `docker.io/library/alpine:latest`; `ghcr.io/a/b@sha256:…` unchanged.
pub fn normalize(reference: &str) -> Result<String, String> {
    if reference.is_empty() {
        return Err("repository name must have at least one component".to_owned());
    }
    if reference.len() > 4096 {
        return Err("reference is longer than 4096 characters".to_owned());
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        validate_digest(d)?;
    }
    // A tag is the part after the last ':' that follows the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        let valid = t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(format!("invalid tag {t:?}"));
        }
    }
    if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid repository name ({name}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (domain, path) = split_domain(name);
    validate_domain(&domain)?;
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".to_owned());
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err("invalid reference format".to_owned());
        }
    }
    if domain.len() + 1 + path.len() > 255 {
        return Err("repository name must not be more than 255 characters".to_owned());
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

/// `splitDockerDomain`.
fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            let domain = if first == "index.docker.io" {
                "docker.io"
            } else {
                first
            };
            let path = if domain == "docker.io" && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_owned()
            };
            (domain.to_owned(), path)
        }
        Some(_) => ("docker.io".to_owned(), name.to_owned()),
        None => ("docker.io".to_owned(), format!("library/{name}")),
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || domain.starts_with('[') => (h, Some(p)),
        _ => (domain, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("invalid reference format".to_owned());
    }
    let host_ok = if host.starts_with('[') {
        host.ends_with(']')
            && host[1..host.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
    };
    if host_ok {
        Ok(())
    } else {
        Err("invalid reference format".to_owned())
    }
}

fn validate_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("invalid digest format".to_owned());
    };
    let alg_ok = !alg.is_empty()
        && alg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c));
    if !alg_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("invalid digest format".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let ok = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            (
                "golang:1.22-bookworm",
                "docker.io/library/golang:1.22-bookworm",
            ),
            ("bitnami/nginx", "docker.io/bitnami/nginx:latest"),
            (
                "gcr.io/distroless/static-debian12:nonroot",
                "gcr.io/distroless/static-debian12:nonroot",
            ),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let digest = format!("alpine@sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&digest).unwrap(),
            format!("docker.io/library/{digest}")
        );
        for bad in [
            "Builder",
            "a b",
            "alpine:",
            "alpine:-x",
            "-x",
            "a//b",
            "$BASE",
            "Upper",
        ] {
            assert!(normalize(bad).is_err(), "{bad} should be rejected");
        }
    }
}
