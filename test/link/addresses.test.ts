// The address classifier and the allow-list: which addresses a link may reach.
import { describe, expect, test } from "bun:test";
import { addressRange, parseAllowList, refusal } from "../../lib/link.ts";

describe("addresses", () => {
  const table: [string, string][] = [
    ["8.8.8.8", "public"],
    ["93.184.216.34", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "carrierGradeNat"],
    ["100.127.255.255", "carrierGradeNat"],
    ["169.254.1.1", "linkLocal"],
    ["169.254.169.254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["192.0.2.1", "reserved"],
    ["198.51.100.7", "reserved"],
    ["2001:4860:4860::8888", "public"],
    ["2606:4700:4700::1111", "public"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "linkLocal"],
    ["febf::1", "linkLocal"],
    ["fc00::1", "uniqueLocal"],
    ["fd12:3456:789a::1", "uniqueLocal"],
    ["fd00:ec2::254", "metadata"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "reserved"],
    ["::7f00:1", "reserved"],
    ["4000::1", "reserved"],
    // IPv6 spellings of IPv4 addresses are judged by the IPv4 address inside.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::a00:1", "private"],
    ["64:ff9b::808:808", "public"],
    ["2002:7f00:1::", "loopback"],
    ["2002:808:808::1", "public"],
    ["not an address", "invalid"],
  ];
  test.each(table)("%s is %s", (address, range) => {
    expect(addressRange(address)).toBe(range);
    expect(refusal(parseAllowList(""), "example.com", address)).toBe(range === "public" ? null : range);
  });

  test("the allow-list opens hosts and ranges, but a metadata address only when listed exactly", () => {
    const allow = parseAllowList(" localhost , 127.0.0.1/32, 10.1.0.0/16, [fd00::1], 169.254.0.0/16 ");
    expect(refusal(allow, "localhost", "::1")).toBeNull(); // the host name is listed
    expect(refusal(allow, "LOCALHOST.", "127.0.0.1")).toBeNull();
    expect(refusal(allow, "example.com", "127.0.0.1")).toBeNull(); // the range is listed
    expect(refusal(allow, "example.com", "::ffff:127.0.0.1")).toBeNull();
    expect(refusal(allow, "example.com", "127.0.0.2")).toBe("loopback");
    expect(refusal(allow, "example.com", "10.1.200.3")).toBeNull();
    expect(refusal(allow, "example.com", "10.2.0.1")).toBe("private");
    expect(refusal(allow, "example.com", "fd00::1")).toBeNull();
    expect(refusal(allow, "example.com", "169.254.10.10")).toBeNull();
    expect(refusal(allow, "example.com", "169.254.169.254")).toBe("metadata");
    expect(refusal(allow, "localhost", "169.254.169.254")).toBe("metadata");
    expect(refusal(parseAllowList("169.254.169.254"), "example.com", "169.254.169.254")).toBeNull();
    for (const bad of ["10.0.0.0/33", "http://example.com", "exa mple.com", "-bad-.com"]) {
      expect(() => parseAllowList(`localhost,${bad}`)).toThrow(`"${bad}"`);
    }
  });
});
