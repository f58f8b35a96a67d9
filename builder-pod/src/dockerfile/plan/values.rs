//! Value grammars the planner checks after expansion: EXPOSE port specs (`nat.ParsePortSpecs`)
//! and symbolic `--chmod` modes.

/// `[ip:][hostPort:]containerPort[-end][/proto]` → `port/proto` for each container port.
pub(crate) fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let container = rest.rsplit(':').next().unwrap_or(rest);
    if container.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {container}"))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let n = parse(container)?;
            (n, n)
        }
    };
    if end < start {
        return Err(format!(
            "invalid range specified for container port: {container}"
        ));
    }
    Ok((start..=end)
        .map(|port| format!("{port}/{proto}"))
        .collect())
}

pub(crate) fn is_symbolic_mode(mode: &str) -> bool {
    mode.split(',').all(|clause| {
        let ops_start = clause.find(['+', '-', '=']).unwrap_or(clause.len());
        let (who, rest) = clause.split_at(ops_start);
        !rest.is_empty()
            && who.chars().all(|c| "ugoa".contains(c))
            && rest.chars().all(|c| "+-=rwxXstugo".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port_spec("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port_spec("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_port_spec("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        for bad in ["http", "80/icmp", "90-80", "70000", ""] {
            assert!(parse_port_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbolic_modes() {
        for ok in ["u+x", "go-w", "a=rX,u+s", "+x"] {
            assert!(is_symbolic_mode(ok), "{ok}");
        }
        for bad in ["u", "x+u+q", "777a", ""] {
            assert!(!is_symbolic_mode(bad), "{bad}");
        }
    }
}
