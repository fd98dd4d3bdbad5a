module rapport.dev/services/loyalty

go 1.26.8

replace rapport.dev/gen => ../../gen

replace rapport.dev/platform => ../../platform
