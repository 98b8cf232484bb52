# inclavared: the per-node relay between verifiers (shelter) and the workload. The sgx/tdx/snp overlays run it
# as root with the TEE devices; everywhere else it runs as the unprivileged user below.
# Build from the repository root:  docker build -f deploy/docker/inclavared.Dockerfile -t eaa-inclavared:0.1.0 .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/eaa && /opt/eaa/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
COPY --from=build /opt/eaa /opt/eaa
ENV PATH=/opt/eaa/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --home-dir /var/lib/eaa --create-home eaa
USER 10001
WORKDIR /var/lib/eaa
EXPOSE 1236
ENTRYPOINT ["inclavared"]
CMD ["--listen", "0.0.0.0:1236", "--xfer", "127.0.0.1:1234", "--mutual"]
