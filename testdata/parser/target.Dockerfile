# Built with --target Test (names are case-insensitive): the stages test
# does not depend on are not needed, and the order puts deps first.
FROM alpine AS base
RUN echo base

FROM base AS lint
RUN echo lint

FROM alpine AS fixtures
RUN echo fixtures

FROM base AS test
COPY --from=fixtures /f /f
RUN --mount=type=bind,from=lint,target=/lint true

FROM alpine AS docs
RUN echo docs

FROM test AS release
RUN echo release
