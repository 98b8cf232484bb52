# eaa-pccs: the collateral cache (Intel PCCS API v3/v4, AMD KDS). Never needs a device: always unprivileged.
# Build from the repository root:  docker build -f deploy/docker/eaa-pccs.Dockerfile -t eaa-pccs:0.1.0 .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/eaa && /opt/eaa/bin/pip install --no-cache-dir '.[pccs]'

FROM python:3.11-slim-bookworm
COPY --from=build /opt/eaa /opt/eaa
ENV PATH=/opt/eaa/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --home-dir /var/lib/eaa --create-home eaa
USER 10001
WORKDIR /var/lib/eaa
EXPOSE 8081
ENTRYPOINT ["eaa-pccs"]
CMD ["serve", "--help"]
