//! Parse + plan of a generated 5,000-line Dockerfile: multi-stage, line continuations, heredocs,
//! ENV/ARG expansion with defaults and patterns. Goal: < 20 ms in release
//! (docs/arch/dockerfile-fuzz-bench.md records the measured figure).
//!
//! Run: `cargo bench -p stratum-builder --bench dockerfile_parse`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stratum_builder::dockerfile::{BuildOptions, parse, plan};

const TARGET_LINES: usize = 5_000;

/// One stage of a realistic Dockerfile (about 70 lines), building on the previous stage.
fn write_stage(out: &mut String, index: usize) {
    let base = if index == 0 {
        "${BASE}".to_owned()
    } else {
        format!("stage{}", index - 1)
    };
    let copy_from = if index == 0 {
        String::new()
    } else {
        format!("COPY --from=stage{} /opt/ /opt/\n", index - 1)
    };
    let port = index % 100;
    let _ = write!(
        out,
        r#"
# ---- stage {index} -------------------------------------------------------------
FROM {base} AS stage{index}
ARG VERSION
ARG TARGETARCH
ARG COMPONENT=component{index}
ENV APP_HOME=/opt/${{COMPONENT}} \
    APP_VERSION=${{VERSION:-0.0.0}} \
    PATH=/opt/${{COMPONENT}}/bin:$PATH
ENV RELEASE_URL=https://example.com/releases/${{VERSION}}/${{COMPONENT}}-${{TARGETARCH:-amd64}}.tar.gz
ENV RELEASE_NAME=${{RELEASE_URL##*/}} RELEASE_DIR=${{RELEASE_URL%/*}}
LABEL org.opencontainers.image.title="${{COMPONENT}}" \
      org.opencontainers.image.version="${{APP_VERSION}}" \
      org.opencontainers.image.source="https://example.com/src/${{COMPONENT}}"
WORKDIR ${{APP_HOME}}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        git \
        make; \
    rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=bind,source=src,target=/src \
    make -C /src BUILD_DIR=${{APP_HOME}}/build VERSION=${{APP_VERSION}} all
COPY --chown=1000:1000 --chmod=0644 config/${{COMPONENT}}.yaml ${{APP_HOME}}/etc/
{copy_from}ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d \
    https://example.com/archive/${{COMPONENT}}.tar.gz /tmp/
RUN <<EOF
set -e
echo "building ${{COMPONENT}} ${{APP_VERSION}}"
mkdir -p "${{APP_HOME}}/bin"
for f in a b c; do
  echo "$f" > "${{APP_HOME}}/bin/$f"
done
EOF
COPY <<EOF ${{APP_HOME}}/etc/app.conf
name=${{COMPONENT}}
version=${{APP_VERSION}}
home=${{APP_HOME}}
EOF
RUN <<-EOT bash
	set -euo pipefail
	echo "indented heredoc for stage {index}"
	EOT
ENV STAGE_{index}_TAG=${{APP_VERSION/./-}} STAGE_{index}_LOWER=${{COMPONENT#component}}
EXPOSE 80{port:02}/tcp
USER 1000:1000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["curl", "-f", "http://localhost:80{port:02}/health"]
VOLUME ["/var/lib/${{COMPONENT}}"]
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN echo "${{STAGE_{index}_TAG}}" \
 && echo "${{STAGE_{index}_LOWER}}" \
 && test -n "${{APP_HOME:?APP_HOME must be set}}"
ENTRYPOINT ["/opt/${{COMPONENT}}/bin/a"]
CMD ["--config", "/opt/${{COMPONENT}}/etc/app.conf"]
"#
    );
}

/// The generated Dockerfile: whole stages until it reaches [`TARGET_LINES`] lines.
fn generated_dockerfile() -> String {
    let mut out = String::from(
        "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=debian:bookworm-slim\nARG VERSION=1.2.3\n",
    );
    let mut index = 0;
    while out.lines().count() < TARGET_LINES {
        write_stage(&mut out, index);
        index += 1;
    }
    out
}

fn options() -> BuildOptions {
    let mut options = BuildOptions::default();
    options
        .build_args
        .insert("VERSION".to_owned(), "2.0.1".to_owned());
    options
        .build_args
        .insert("TARGETARCH".to_owned(), "arm64".to_owned());
    options
}

fn bench(c: &mut Criterion) {
    let source = generated_dockerfile();
    let options = options();
    // Fail loudly rather than benchmark an error path.
    let dockerfile = parse(&source, "Dockerfile").expect("the generated Dockerfile parses");
    plan(&dockerfile, &options).expect("the generated Dockerfile plans");
    eprintln!(
        "dockerfile_parse: {} lines, {} bytes",
        source.lines().count(),
        source.len()
    );

    c.bench_function("parse_and_plan_5000_lines", |b| {
        b.iter(|| {
            let dockerfile = parse(black_box(&source), "Dockerfile").expect("parses");
            black_box(plan(&dockerfile, &options).expect("plans"))
        })
    });
    c.bench_function("parse_5000_lines", |b| {
        b.iter(|| black_box(parse(black_box(&source), "Dockerfile").expect("parses")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
