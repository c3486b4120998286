# syntax=docker/dockerfile:1.7
# One build of the workspace, one small non-root image per service:
#   docker build --target command-service -t todo/command-service .
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys (configure + make, no cmake).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential perl python3 && rm -rf /var/lib/apt/lists/*
COPY . .
# The observer is built when its crate is in the tree (scripts/validate/
# dockerfile_check.py warns while it is not; its target then has nothing to copy).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    bins="command-service query-service event-processor todoctl" \
 && if [ -f crates/observer/Cargo.toml ]; then bins="$bins observer"; fi \
 && cargo build --release --locked $(printf -- '--bin %s ' $bins) \
 && mkdir -p /out \
 && for b in $bins; do cp "target/release/$b" /out/; done

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --no-create-home app
USER 10001:10001
ENV RUST_LOG=info

FROM runtime AS command-service
COPY --from=build /out/command-service /usr/local/bin/command-service
ENV COMMAND_LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --retries=12 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/command-service"]

FROM runtime AS query-service
COPY --from=build /out/query-service /usr/local/bin/query-service
ENV QUERY_LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --retries=12 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/query-service"]

FROM runtime AS event-processor
COPY --from=build /out/event-processor /usr/local/bin/event-processor
ENV PROCESSOR_LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --retries=12 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/event-processor"]

FROM runtime AS observer
COPY --from=build /out/observer /usr/local/bin/observer
ENV OBSERVER_LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --retries=12 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/observer"]

FROM runtime AS todoctl
COPY --from=build /out/todoctl /usr/local/bin/todoctl
ENTRYPOINT ["/usr/local/bin/todoctl"]
