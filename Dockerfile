# fcaudit container image: a static binary (CGO_ENABLED=0; the embedded
# SQLite is pure Go) on distroless/static, running as the non-root user
# 65532 with its data in the /data volume. See deploy/README.md.
#
#   docker build -t fcaudit --build-arg VERSION=$(git describe --tags --always) .
#   docker run -d -p 8080:8080 -v fcaudit-data:/data \
#     -e STRIPE_WEBHOOK_SECRET=whsec_… -e FCAUDIT_API_TOKENS=… fcaudit
#
# cmd/fcaudit's TestDockerfile checks this file (no Docker engine runs in CI).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/fcaudit ./cmd/fcaudit \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fcaudit /usr/local/bin/fcaudit
# The volume's mount point belongs to the non-root user, so a new named
# volume starts out writable by it (distroless has no shell to chown with).
COPY --from=build --chown=65532:65532 /out/data /data
COPY LICENSE /usr/share/doc/fcaudit/LICENSE
ENV FCAUDIT_DATA_DIR=/data \
    FCAUDIT_LISTEN=0.0.0.0:8080 \
    FCAUDIT_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
# distroless has no curl: the binary checks itself (GET /healthz on FCAUDIT_LISTEN).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/fcaudit", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/fcaudit"]
CMD ["serve"]
