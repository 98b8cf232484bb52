# enclave-tls-server: the attested workload inclavared forwards to (the seed's sample server). On a real
# TEE it must run inside the enclave runtime (Gramine/Occlum); with the simulated TEE it runs as it is. The
# simulated attester measures its program files, /opt/eaa/lib/python3.11/site-packages/eaa/services/workload.py
# and .../eaa/cli/enclave_tls_server.py, into MRENCLAVE: the sim overlay computes its reference values there.
# Build from the repository root:  docker build -f deploy/docker/enclave-tls-server.Dockerfile -t eaa-enclave-tls-server:0.1.0 .
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
EXPOSE 1234
ENTRYPOINT ["enclave-tls-server"]
CMD ["--ip", "127.0.0.1", "--port", "1234", "--mutual"]
