import AttuneCore
import Testing

@Suite struct CPUInfoTests {
    @Test func modelAndVectorExtensionsAreReadFromCpuinfo() {
        let text = """
            processor\t: 0
            vendor_id\t: AuthenticAMD
            model name\t: AMD EPYC 7B13
            flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2

            processor\t: 1
            model name\t: AMD EPYC 7B13
            flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2
            """
        let cpu = CPUInfo.parse(text, cores: 2)
        #expect(cpu == CPUInfo(model: "AMD EPYC 7B13", cores: 2, avx2: true, avx512: false, amx: false))
        #expect(cpu.summary == "AMD EPYC 7B13, 2 cores, AVX2")
        let server = CPUInfo.parse("model name : Intel Xeon\nflags : avx2 avx512f amx_tile amx_bf16\n", cores: 16)
        #expect(server.avx512 && server.amx)
        #expect(CPUInfo.parse("", cores: 1).model == "unknown")
    }

    @Test func thisMachinesCPUIsKnown() {
        #expect(CPUInfo.current.cores >= 1)
        #expect(CPUInfo.current.model != "unknown")
    }
}
