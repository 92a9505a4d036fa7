# The predefined platform ARGs, from build linux/amd64 to target linux/arm/v7.
FROM --platform=$BUILDPLATFORM golang AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build .

FROM --platform=${TARGETPLATFORM} alpine:${TARGETARCH}${TARGETVARIANT}
COPY --from=build /src/app /
